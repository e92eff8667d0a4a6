//! `domains` text ⇄ [`Domain`].
//!
//! A name is kept in the form DNS queries and TLS SNI carry it, so that the
//! kernel compares bytes and never has to know about case or Unicode:
//! ASCII, lower case, internationalised labels as punycode A-labels, no
//! trailing dot.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Serialize};

/// Longest name, in bytes of its ASCII form without the trailing dot: the
/// 255 bytes of a name on the wire, less its first length byte and the root.
pub const MAX_DOMAIN_BYTES: usize = 253;
/// Longest label, in bytes of its ASCII form (RFC 1035).
pub const MAX_LABEL_BYTES: usize = 63;

/// STD3's deny list (everything but letters, digits, '-' and '.') less
/// '_', which service labels (`_dmarc`) and some real host names use. Given
/// to UTS #46 it refuses a non-ASCII character that would map to a refused
/// ASCII one (a full-width '／' to '/') instead of mapping it.
const DENY: AsciiDenyList = AsciiDenyList::new(true, "!\"#$%&'()*+,/:;<=>?@[\\]^`{|}~");

/// A domain name of a rule; it stands for itself and all its subdomains.
/// Always in its normalized ASCII form: lower case, internationalised
/// labels as punycode (`xn--…`), no trailing dot. Displays and serializes
/// as that form, e.g. `"xn--bcher-kva.example"` for `Bücher.example.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Domain(String);

/// Why a `domains` entry was refused. Like [`CidrError`](super::cidr::CidrError), the
/// messages quote the input so that they stand on their own next to a
/// `FILE:LINE:COL`; an overlong name is not quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("domain must not be empty")]
    Empty,
    #[error(
        r#"domain "." is the DNS root and would cover every name; list the domains to match instead"#
    )]
    Root,
    #[error(
        "invalid domain {input:?}: looks like an IP address; write only the host name here, and put addresses in `cidrs`"
    )]
    IpAddress { input: String },
    #[error(
        "invalid domain {input:?}: looks like {what}; write only the host name{}",
        suggestion(": ", .host)
    )]
    NotHostName {
        input: String,
        /// "a URL", "an email address" or "a host and port".
        what: &'static str,
        /// The host name in it, when that is a valid domain.
        host: Option<Domain>,
    },
    #[error(
        "invalid domain {input:?}: wildcards are not supported, a domain already covers all its subdomains{}",
        suggestion("; write ", .without)
    )]
    Wildcard {
        input: String,
        /// The name without its leading `*.`, when that is a valid domain.
        without: Option<Domain>,
    },
    #[error(
        "invalid domain {input:?}: {bad:?} is not allowed; labels have only letters, digits, '-' and '_'"
    )]
    Character { input: String, bad: char },
    #[error(r#"invalid domain {input:?}: label {label:?} {end} with "-""#)]
    Hyphen {
        input: String,
        label: String,
        /// "starts" or "ends".
        end: &'static str,
    },
    #[error(
        "invalid domain {input:?}: not a valid internationalised domain name; '\u{FFFD}' marks what is refused in {marked:?}"
    )]
    Idna { input: String, marked: String },
    #[error(
        r#"invalid domain {input:?}: empty label; labels are separated by a single ".", and none comes before the first"#
    )]
    EmptyLabel { input: String },
    #[error("domain label {label:?} is {bytes} bytes long; at most {MAX_LABEL_BYTES} are allowed")]
    LabelTooLong { label: String, bytes: usize },
    #[error(
        "domain is {bytes} bytes long{}; at most {MAX_DOMAIN_BYTES} are allowed",
        if *.punycode { " as punycode" } else { "" }
    )]
    TooLong {
        bytes: usize,
        /// Whether the name had non-ASCII characters, so that the length is
        /// that of its converted form.
        punycode: bool,
    },
}

/// The end of a message that can propose a corrected name.
fn suggestion(lead: &str, name: &Option<Domain>) -> String {
    match name {
        Some(name) => format!(r#"{lead}"{name}""#),
        None => String::new(),
    }
}

impl Domain {
    /// The normalized ASCII form, as DNS carries the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = DomainError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(DomainError::Empty);
        }
        // A fully qualified name ends with the root's dot; it names the same
        // domain.
        let name = input.strip_suffix('.').unwrap_or(input);
        if name.is_empty() {
            return Err(DomainError::Root);
        }
        check_host_name(input, name)?;
        // Only ASCII here, to name the character; UTS #46 judges the others.
        if let Some(bad) = name
            .chars()
            .find(|&c| c.is_ascii() && !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(DomainError::Character {
                input: input.to_owned(),
                bad,
            });
        }
        for label in name.split('.') {
            let end = if label.starts_with('-') {
                "starts"
            } else if label.ends_with('-') {
                "ends"
            } else {
                continue;
            };
            return Err(DomainError::Hyphen {
                input: input.to_owned(),
                label: label.to_owned(),
                end,
            });
        }
        // Lengths are checked below, on the converted form, with clearer
        // messages than `DnsLength::Verify` gives.
        let ascii = Uts46::new()
            .to_ascii(
                name.as_bytes(),
                DENY,
                Hyphens::CheckFirstLast,
                DnsLength::Ignore,
            )
            .map_err(|_| DomainError::Idna {
                input: input.to_owned(),
                marked: Uts46::new()
                    .to_unicode(name.as_bytes(), DENY, Hyphens::CheckFirstLast)
                    .0
                    .into_owned(),
            })?;
        // Labels are checked after the conversion, which also maps the
        // other full stops ("。") to ".".
        for label in ascii.split('.') {
            if label.is_empty() {
                return Err(DomainError::EmptyLabel {
                    input: input.to_owned(),
                });
            }
            if label.len() > MAX_LABEL_BYTES {
                return Err(DomainError::LabelTooLong {
                    label: label.to_owned(),
                    bytes: label.len(),
                });
            }
        }
        if ascii.len() > MAX_DOMAIN_BYTES {
            return Err(DomainError::TooLong {
                bytes: ascii.len(),
                punycode: !name.is_ascii(),
            });
        }
        Ok(Domain(ascii.into_owned()))
    }
}

/// Refuses what is more than a host name: an address, a URL, an email
/// address, a host with its port, a wildcard. Such entries come from
/// copying a name out of a browser or another tool's configuration, so the
/// message says what to write instead.
fn check_host_name(input: &str, name: &str) -> Result<(), DomainError> {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|name| name.strip_suffix(']'))
        .unwrap_or(name);
    // Resolvers and browsers read a name whose last label is a number as
    // an IPv4 address ("10.1", "0x7f.1"), and no top-level domain is one.
    let last_label = name.rsplit('.').next().unwrap_or(name);
    if unbracketed.parse::<IpAddr>().is_ok()
        || name.parse::<SocketAddr>().is_ok()
        || (!last_label.is_empty() && last_label.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainError::IpAddress {
            input: input.to_owned(),
        });
    }
    let what = if name.contains(['/', '?', '#']) {
        "a URL"
    } else if name.contains('@') {
        "an email address"
    } else if name.contains(':') {
        "a host and port"
    } else {
        ""
    };
    if !what.is_empty() {
        return Err(DomainError::NotHostName {
            input: input.to_owned(),
            what,
            host: host_of(name),
        });
    }
    if name.contains('*') {
        return Err(DomainError::Wildcard {
            input: input.to_owned(),
            without: name.strip_prefix("*.").and_then(|rest| rest.parse().ok()),
        });
    }
    Ok(())
}

/// The host of a URL, an email address or a `host:port`, when it is a valid
/// domain.
fn host_of(text: &str) -> Option<Domain> {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => host,
    };
    host.parse().ok()
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Serde goes through the text form (see the `serde(into, try_from)` on the
// type), so deserialized values have passed the same checks as parsed ones.
impl From<Domain> for String {
    fn from(domain: Domain) -> Self {
        domain.0
    }
}

impl TryFrom<String> for Domain {
    type Error = DomainError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(input: &str) -> Result<String, String> {
        input
            .parse::<Domain>()
            .map(|d| d.to_string())
            .map_err(|e| e.to_string())
    }

    fn err(input: &str) -> String {
        match input.parse::<Domain>() {
            Ok(domain) => panic!("{input:?} was accepted as {domain}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn names_are_lower_case_without_the_trailing_dot() {
        assert_eq!(domain("telegram.org"), Ok("telegram.org".into()));
        assert_eq!(domain("Telegram.ORG."), Ok("telegram.org".into()));
        assert_eq!(domain("web.WhatsApp.com"), Ok("web.whatsapp.com".into()));
        assert_eq!(domain("localhost"), Ok("localhost".into()));
        assert_eq!(
            domain("_dmarc.example.com"),
            Ok("_dmarc.example.com".into())
        );
        // Hyphens inside labels, also in third and fourth place (CDN hosts).
        assert_eq!(
            domain("r4---sn-4g5e6nz7.googlevideo.com"),
            Ok("r4---sn-4g5e6nz7.googlevideo.com".into())
        );
        assert_eq!(domain("1password.com"), Ok("1password.com".into()));
        assert_eq!(domain("example.com1"), Ok("example.com1".into()));
        let parsed: Domain = "A.b".parse().unwrap();
        assert_eq!(parsed.as_str(), "a.b");
        assert_eq!(parsed, "a.b.".parse().unwrap());
    }

    #[test]
    fn internationalised_names_become_punycode() {
        assert_eq!(domain("Bücher.example"), Ok("xn--bcher-kva.example".into()));
        assert_eq!(
            domain("bücher.example."),
            Ok("xn--bcher-kva.example".into())
        );
        // The A-label itself, in any case, is the same name.
        assert_eq!(
            domain("XN--BCHER-KVA.example"),
            Ok("xn--bcher-kva.example".into())
        );
        assert_eq!(domain("пример.рф"), Ok("xn--e1afmkfd.xn--p1ai".into()));
        // Ideographic full stops separate labels too.
        assert_eq!(domain("例え。jp"), Ok("xn--r8jz45g.jp".into()));
    }

    #[test]
    fn empty_and_root() {
        assert_eq!(err(""), "domain must not be empty");
        assert_eq!(
            err("."),
            r#"domain "." is the DNS root and would cover every name; list the domains to match instead"#
        );
    }

    #[test]
    fn empty_labels() {
        let message = |input: &str| {
            format!(
                r#"invalid domain {input:?}: empty label; labels are separated by a single ".", and none comes before the first"#
            )
        };
        for input in ["a..b", ".example.com", "example.com..", "..", "a。。b"] {
            assert_eq!(err(input), message(input));
        }
    }

    #[test]
    fn label_and_name_lengths() {
        let longest_label = "a".repeat(63);
        assert_eq!(
            domain(&format!("{longest_label}.com")),
            Ok(format!("{longest_label}.com"))
        );
        let long_label = "b".repeat(64);
        assert_eq!(
            err(&format!("x.{long_label}.com")),
            format!(r#"domain label "{long_label}" is 64 bytes long; at most 63 are allowed"#)
        );
        // 4 labels of 63 and a dot each: 255 bytes; 253 is the most.
        let label = "c".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "c".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(domain(&longest), Ok(longest.clone()));
        assert_eq!(domain(&format!("{longest}.")), Ok(longest.clone()));
        assert_eq!(
            err(&format!("{longest}c")),
            "domain is 254 bytes long; at most 253 are allowed"
        );
        // Lengths count the punycode form.
        let umlauts = "ü".repeat(30);
        let converted = domain(&umlauts).unwrap();
        assert!(converted.starts_with("xn--") && converted.len() <= 63);
        let long_idn = "ü".repeat(60);
        let message = err(&long_idn);
        assert!(
            message.starts_with(r#"domain label "xn--"#)
                && message.ends_with("bytes long; at most 63 are allowed"),
            "{message}"
        );
        let many = [umlauts.as_str(); 8].join(".");
        let message = err(&many);
        assert!(
            message.starts_with("domain is ")
                && message.ends_with(" bytes long as punycode; at most 253 are allowed"),
            "{message}"
        );
    }

    #[test]
    fn characters() {
        assert_eq!(
            err("tele gram.org"),
            r#"invalid domain "tele gram.org": ' ' is not allowed; labels have only letters, digits, '-' and '_'"#
        );
        assert_eq!(
            err("a!b.com"),
            r#"invalid domain "a!b.com": '!' is not allowed; labels have only letters, digits, '-' and '_'"#
        );
        assert_eq!(
            err("a\0b"),
            r#"invalid domain "a\0b": '\0' is not allowed; labels have only letters, digits, '-' and '_'"#
        );
        // A character that UTS #46 would map to a refused one is refused,
        // not mapped: a full-width solidus is not a "/".
        let message = err("a\u{FF0F}b.com");
        assert!(
            message.starts_with(
                r#"invalid domain "a／b.com": not a valid internationalised domain name;"#
            ),
            "{message}"
        );
        assert!(message.contains('\u{FFFD}'), "{message}");
        let marked = |input: &str, marked: &str| {
            format!(
                "invalid domain {input:?}: not a valid internationalised domain name; \
                 '\u{FFFD}' marks what is refused in {marked:?}"
            )
        };
        assert_eq!(
            err("a\u{2028}b.com"),
            marked("a\u{2028}b.com", "a\u{FFFD}b.com")
        );
        // A combining mark cannot start a label.
        assert_eq!(err("\u{301}a.com"), marked("\u{301}a.com", "\u{FFFD}a.com"));
        // An A-label must be valid punycode.
        assert_eq!(
            err("xn--zz.example"),
            marked("xn--zz.example", "\u{FFFD}n--zz.example")
        );
    }

    #[test]
    fn hyphens_at_either_end_of_a_label() {
        assert_eq!(
            err("-telegram.org"),
            r#"invalid domain "-telegram.org": label "-telegram" starts with "-""#
        );
        assert_eq!(
            err("web.Telegram-.org."),
            r#"invalid domain "web.Telegram-.org.": label "Telegram-" ends with "-""#
        );
        assert_eq!(
            err("bü-.example"),
            r#"invalid domain "bü-.example": label "bü-" ends with "-""#
        );
    }

    #[test]
    fn wildcards() {
        assert_eq!(
            err("*.example.com"),
            r#"invalid domain "*.example.com": wildcards are not supported, a domain already covers all its subdomains; write "example.com""#
        );
        assert_eq!(
            err("*.Bücher.example."),
            r#"invalid domain "*.Bücher.example.": wildcards are not supported, a domain already covers all its subdomains; write "xn--bcher-kva.example""#
        );
        assert_eq!(
            err("tele*.org"),
            r#"invalid domain "tele*.org": wildcards are not supported, a domain already covers all its subdomains"#
        );
        assert_eq!(
            err("*"),
            r#"invalid domain "*": wildcards are not supported, a domain already covers all its subdomains"#
        );
    }

    #[test]
    fn addresses() {
        for input in [
            "192.0.2.1",
            "192.0.2.1.",
            "2001:db8::1",
            "[2001:db8::1]",
            "192.0.2.1:443",
            "[::1]:53",
            "10.1",
            "999.1.1.1",
            "0x7f.1",
            "example.123",
        ] {
            assert_eq!(
                err(input),
                format!(
                    "invalid domain {input:?}: looks like an IP address; write only the host name here, and put addresses in `cidrs`"
                )
            );
        }
    }

    #[test]
    fn urls_and_ports() {
        assert_eq!(
            err("https://Telegram.org/"),
            r#"invalid domain "https://Telegram.org/": looks like a URL; write only the host name: "telegram.org""#
        );
        assert_eq!(
            err("https://user@web.telegram.org:8443/k/?a=b#c"),
            r#"invalid domain "https://user@web.telegram.org:8443/k/?a=b#c": looks like a URL; write only the host name: "web.telegram.org""#
        );
        assert_eq!(
            err("example.com/path"),
            r#"invalid domain "example.com/path": looks like a URL; write only the host name: "example.com""#
        );
        assert_eq!(
            err("https://"),
            r#"invalid domain "https://": looks like a URL; write only the host name"#
        );
        assert_eq!(
            err("https://192.0.2.1/"),
            r#"invalid domain "https://192.0.2.1/": looks like a URL; write only the host name"#
        );
        assert_eq!(
            err("host:443"),
            r#"invalid domain "host:443": looks like a host and port; write only the host name: "host""#
        );
        assert_eq!(
            err("a:b:c"),
            r#"invalid domain "a:b:c": looks like a host and port; write only the host name"#
        );
        assert_eq!(
            err("user@Example.com"),
            r#"invalid domain "user@Example.com": looks like an email address; write only the host name: "example.com""#
        );
    }

    #[test]
    fn serde_goes_through_the_text_form() {
        let parsed: Domain = serde_json::from_str(r#""Bücher.Example.""#).unwrap();
        assert_eq!(parsed.as_str(), "xn--bcher-kva.example");
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#""xn--bcher-kva.example""#
        );
        assert!(serde_json::from_str::<Domain>(r#""*.example.com""#).is_err());
        assert!(serde_json::from_str::<Domain>(r#""""#).is_err());
    }
}
