//! CIDR text ⇄ [`Cidr`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A network, always with its host bits clear. IPv4-mapped IPv6 networks
/// (`::ffff:0:0/96` and narrower) are stored as their IPv4 equivalent.
/// Serializes as its text form, e.g. `"10.0.0.0/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Cidr {
    V4 { addr: Ipv4Addr, prefix_len: u8 },
    V6 { addr: Ipv6Addr, prefix_len: u8 },
}

/// Why a CIDR string was refused. The messages quote the input so that they
/// stand on their own next to a `FILE:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid CIDR {input:?}: {address:?} is not an IPv4 or IPv6 address")]
    Address { input: String, address: String },
    #[error("invalid CIDR {input:?}: prefix length {prefix:?} is not a number")]
    PrefixNotNumber { input: String, prefix: String },
    #[error(
        "invalid CIDR {input:?}: prefix length {prefix} is out of range for {family} (0-{max})"
    )]
    PrefixOutOfRange {
        input: String,
        prefix: String,
        family: &'static str,
        max: u8,
    },
    #[error("host bits set in {input}; did you mean {suggestion}?")]
    HostBitsSet { input: String, suggestion: String },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match input.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (input, None),
        };
        if let Ok(addr) = address.parse::<Ipv4Addr>() {
            let prefix_len = parse_prefix(input, prefix, "IPv4", 32)?;
            let bits = u32::from(addr);
            let network = bits & mask32(prefix_len);
            if network != bits {
                return Err(host_bits_set(input, Ipv4Addr::from(network), prefix_len));
            }
            return Ok(Cidr::V4 { addr, prefix_len });
        }
        if let Ok(addr) = address.parse::<Ipv6Addr>() {
            let prefix_len = parse_prefix(input, prefix, "IPv6", 128)?;
            let bits = u128::from(addr);
            let network = bits & mask128(prefix_len);
            if network != bits {
                return Err(host_bits_set(input, Ipv6Addr::from(network), prefix_len));
            }
            // The kernel hands IPv4 traffic on dual-stack sockets to the IPv6
            // hooks as ::ffff:a.b.c.d; writing the rule as IPv4 keeps one
            // canonical form so the compiler (and duplicate checks) see one.
            if prefix_len >= 96
                && let Some(v4) = addr.to_ipv4_mapped()
            {
                return Ok(Cidr::V4 {
                    addr: v4,
                    prefix_len: prefix_len - 96,
                });
            }
            return Ok(Cidr::V6 { addr, prefix_len });
        }
        Err(CidrError::Address {
            input: input.to_owned(),
            address: address.to_owned(),
        })
    }
}

/// A missing `/len` means a single host.
fn parse_prefix(
    input: &str,
    prefix: Option<&str>,
    family: &'static str,
    max: u8,
) -> Result<u8, CidrError> {
    let Some(prefix) = prefix else {
        return Ok(max);
    };
    // `u8::from_str` would also take "+8"; only plain digits are a prefix.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CidrError::PrefixNotNumber {
            input: input.to_owned(),
            prefix: prefix.to_owned(),
        });
    }
    match prefix.parse::<u8>() {
        Ok(len) if len <= max => Ok(len),
        _ => Err(CidrError::PrefixOutOfRange {
            input: input.to_owned(),
            prefix: prefix.to_owned(),
            family,
            max,
        }),
    }
}

fn host_bits_set(input: &str, network: impl fmt::Display, prefix_len: u8) -> CidrError {
    CidrError::HostBitsSet {
        input: input.to_owned(),
        suggestion: format!("{network}/{prefix_len}"),
    }
}

fn mask32(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask128(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4 { addr, prefix_len } => write!(f, "{addr}/{prefix_len}"),
            Cidr::V6 { addr, prefix_len } => write!(f, "{addr}/{prefix_len}"),
        }
    }
}

// Serde goes through the text form (see the `serde(into, try_from)` on the
// type), so a deserialized Cidr has passed the same checks as a parsed one.
impl From<Cidr> for String {
    fn from(cidr: Cidr) -> Self {
        cidr.to_string()
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str, prefix_len: u8) -> Cidr {
        Cidr::V4 {
            addr: s.parse().unwrap(),
            prefix_len,
        }
    }

    fn v6(s: &str, prefix_len: u8) -> Cidr {
        Cidr::V6 {
            addr: s.parse().unwrap(),
            prefix_len,
        }
    }

    fn err(s: &str) -> String {
        s.parse::<Cidr>().unwrap_err().to_string()
    }

    #[test]
    fn parses_networks() {
        assert_eq!("10.0.0.0/8".parse(), Ok(v4("10.0.0.0", 8)));
        assert_eq!("0.0.0.0/0".parse(), Ok(v4("0.0.0.0", 0)));
        assert_eq!("2001:b28:f23d::/48".parse(), Ok(v6("2001:b28:f23d::", 48)));
        assert_eq!("::/0".parse(), Ok(v6("::", 0)));
    }

    #[test]
    fn bare_address_is_a_single_host() {
        assert_eq!("192.0.2.7".parse(), Ok(v4("192.0.2.7", 32)));
        assert_eq!("2001:db8::1".parse(), Ok(v6("2001:db8::1", 128)));
    }

    #[test]
    fn v4_mapped_v6_becomes_v4() {
        assert_eq!("::ffff:10.0.0.0/104".parse(), Ok(v4("10.0.0.0", 8)));
        assert_eq!("::ffff:192.0.2.1".parse(), Ok(v4("192.0.2.1", 32)));
        assert_eq!("::ffff:0:0/96".parse(), Ok(v4("0.0.0.0", 0)));
        // Wider than the mapped range: stays IPv6.
        assert_eq!(
            "::ffff:0:0/95".parse::<Cidr>(),
            Err(CidrError::HostBitsSet {
                input: "::ffff:0:0/95".into(),
                suggestion: "::fffe:0:0/95".into()
            })
        );
        assert_eq!("::/80".parse(), Ok(v6("::", 80)));
    }

    #[test]
    fn host_bits_suggest_the_network() {
        assert_eq!(
            err("10.0.0.1/8"),
            "host bits set in 10.0.0.1/8; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            err("2001:db8::1/32"),
            "host bits set in 2001:db8::1/32; did you mean 2001:db8::/32?"
        );
        assert_eq!(
            err("::ffff:10.1.0.0/104"),
            "host bits set in ::ffff:10.1.0.0/104; did you mean ::ffff:10.0.0.0/104?"
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            err("10.0.0/8"),
            r#"invalid CIDR "10.0.0/8": "10.0.0" is not an IPv4 or IPv6 address"#
        );
        assert_eq!(
            err(""),
            r#"invalid CIDR "": "" is not an IPv4 or IPv6 address"#
        );
        assert_eq!(
            err(" 10.0.0.0/8"),
            r#"invalid CIDR " 10.0.0.0/8": " 10.0.0.0" is not an IPv4 or IPv6 address"#
        );
        assert_eq!(
            err("10.0.0.0/"),
            r#"invalid CIDR "10.0.0.0/": prefix length "" is not a number"#
        );
        assert_eq!(
            err("10.0.0.0/+8"),
            r#"invalid CIDR "10.0.0.0/+8": prefix length "+8" is not a number"#
        );
        assert_eq!(
            err("10.0.0.0/8/9"),
            r#"invalid CIDR "10.0.0.0/8/9": prefix length "8/9" is not a number"#
        );
    }

    #[test]
    fn prefix_out_of_range() {
        assert_eq!(
            err("10.0.0.0/33"),
            r#"invalid CIDR "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)"#
        );
        assert_eq!(
            err("::/129"),
            r#"invalid CIDR "::/129": prefix length 129 is out of range for IPv6 (0-128)"#
        );
        assert_eq!(
            err("::/99999999999999999999"),
            r#"invalid CIDR "::/99999999999999999999": prefix length 99999999999999999999 is out of range for IPv6 (0-128)"#
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["10.0.0.0/8", "192.0.2.1/32", "2001:b28:f23d::/48", "::/0"] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), text);
        }
    }
}
