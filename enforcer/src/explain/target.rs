//! What `policy explain` is asked about: an endpoint, a domain name or an
//! executable, told apart by their form.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    str::FromStr,
};

use crate::policy::{Domain, DomainError};

/// One thing to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ip[:port][/proto]`; IPv6 with a port in brackets: `[2001:db8::1]:443`.
    Endpoint {
        addr: IpAddr,
        port: Option<u16>,
        protocol: Option<Protocol>,
    },
    /// A host name, normalized as a policy's `domains` are.
    Domain(Domain),
    /// An absolute path to an executable.
    Exec(PathBuf),
}

/// The protocols a target may name; rules name the same two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid target {input:?}: unknown protocol {protocol:?}; expected \"tcp\" or \"udp\"")]
    Protocol { input: String, protocol: String },
    #[error("invalid target {input:?}: {port:?} is not a port (1-65535)")]
    Port { input: String, port: String },
    #[error(
        "invalid target {input:?}: not an address (ip[:port][/proto]), a domain name or an absolute path: {source}"
    )]
    Name {
        input: String,
        #[source]
        source: DomainError,
    },
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.starts_with('/') {
            return Ok(Target::Exec(PathBuf::from(input)));
        }
        if let Some(endpoint) = endpoint(input)? {
            return Ok(endpoint);
        }
        input
            .parse::<Domain>()
            .map(Target::Domain)
            .map_err(|source| TargetError::Name {
                input: input.to_owned(),
                source,
            })
    }
}

/// `Some` when `input` starts with an address; then the rest must be a
/// port and a protocol.
fn endpoint(input: &str) -> Result<Option<Target>, TargetError> {
    let (rest, protocol) = match input.rsplit_once('/') {
        Some((rest, name)) => (rest, Some(name)),
        None => (input, None),
    };
    let (addr, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((addr, after)) = bracketed.split_once(']') else {
            return Ok(None);
        };
        let Ok(addr) = addr.parse::<Ipv6Addr>() else {
            return Ok(None);
        };
        (IpAddr::V6(addr), after.strip_prefix(':'))
    } else if let Ok(addr) = rest.parse::<IpAddr>() {
        (addr, None)
    } else {
        match rest.rsplit_once(':') {
            Some((addr, port)) => match addr.parse::<std::net::Ipv4Addr>() {
                Ok(addr) => (IpAddr::V4(addr), Some(port)),
                Err(_) => return Ok(None),
            },
            None => return Ok(None),
        }
    };
    let port = port
        .map(|port| match port.parse::<u16>() {
            Ok(number) if number != 0 => Ok(number),
            _ => Err(TargetError::Port {
                input: input.to_owned(),
                port: port.to_owned(),
            }),
        })
        .transpose()?;
    let protocol = protocol
        .map(|name| match name.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(TargetError::Protocol {
                input: input.to_owned(),
                protocol: name.to_owned(),
            }),
        })
        .transpose()?;
    Ok(Some(Target::Endpoint {
        addr,
        port,
        protocol,
    }))
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Endpoint {
                addr,
                port,
                protocol,
            } => {
                match (addr, port) {
                    (IpAddr::V6(addr), Some(port)) => write!(f, "[{addr}]:{port}")?,
                    (addr, Some(port)) => write!(f, "{addr}:{port}")?,
                    (addr, None) => write!(f, "{addr}")?,
                }
                match protocol {
                    Some(protocol) => write!(f, "/{protocol}"),
                    None => Ok(()),
                }
            }
            Target::Domain(domain) => write!(f, "{domain}"),
            Target::Exec(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(addr: &str, port: Option<u16>, protocol: Option<Protocol>) -> Target {
        Target::Endpoint {
            addr: addr.parse().unwrap(),
            port,
            protocol,
        }
    }

    #[test]
    fn tells_endpoints_names_and_paths_apart() {
        let cases = [
            (
                "149.154.167.50:443/tcp",
                endpoint("149.154.167.50", Some(443), Some(Protocol::Tcp)),
            ),
            ("149.154.167.50", endpoint("149.154.167.50", None, None)),
            (
                "10.0.0.1/UDP",
                endpoint("10.0.0.1", None, Some(Protocol::Udp)),
            ),
            ("2001:db8::1", endpoint("2001:db8::1", None, None)),
            (
                "[2001:db8::1]:443/udp",
                endpoint("2001:db8::1", Some(443), Some(Protocol::Udp)),
            ),
            (
                "2001:db8::1/tcp",
                endpoint("2001:db8::1", None, Some(Protocol::Tcp)),
            ),
            (
                "Web.WhatsApp.com.",
                Target::Domain("web.whatsapp.com".parse().unwrap()),
            ),
            (
                "/usr/bin/telegram-desktop",
                Target::Exec("/usr/bin/telegram-desktop".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Target>(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn displays_endpoints_as_they_are_written() {
        for input in [
            "149.154.167.50:443/tcp",
            "[2001:db8::1]:443/udp",
            "10.0.0.1",
        ] {
            assert_eq!(input.parse::<Target>().unwrap().to_string(), input);
        }
    }

    #[test]
    fn refuses_what_is_neither_with_the_reason() {
        let error = |input: &str| input.parse::<Target>().unwrap_err().to_string();
        assert_eq!(
            error("10.0.0.1:0"),
            r#"invalid target "10.0.0.1:0": "0" is not a port (1-65535)"#
        );
        assert_eq!(
            error("10.0.0.1:443/icmp"),
            r#"invalid target "10.0.0.1:443/icmp": unknown protocol "icmp"; expected "tcp" or "udp""#
        );
        assert!(error("tele gram.org").starts_with(
            r#"invalid target "tele gram.org": not an address (ip[:port][/proto]), a domain name or an absolute path: "#
        ));
    }
}
