//! Executable keys: `exec_paths`, `exec_names` and `exec_sha256` text ⇄
//! [`ExecPath`], file name and [`Sha256`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest `exec_paths` entry, in bytes as written (Linux `PATH_MAX`).
pub const MAX_EXEC_PATH_BYTES: usize = 4096;
/// Longest `exec_names` entry, in bytes (Linux `NAME_MAX`).
pub const MAX_EXEC_NAME_BYTES: usize = 255;

const SHA256_HEX_DIGITS: usize = 64;

/// An absolute executable path: a file, or with `directory` every file
/// under that directory at any depth. `path` is absolute, has no empty,
/// `.` or `..` components, no trailing `/` and is never `/` itself.
/// Displays and serializes as written in a policy, with a trailing `/` for a
/// directory, e.g. `"/opt/Telegram/"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ExecPath {
    pub path: PathBuf,
    pub directory: bool,
}

/// A SHA-256 digest. Displays and serializes as 64 lowercase hex digits;
/// parses from either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Sha256(pub [u8; 32]);

/// Why an exec key's entry was refused. Like [`CidrError`](super::cidr::CidrError), the
/// messages quote the input so that they stand on their own next to a
/// `FILE:LINE:COL`; overlong input is not quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("exec path is {bytes} bytes long; at most {MAX_EXEC_PATH_BYTES} are allowed")]
    PathTooLong { bytes: usize },
    #[error("invalid exec path {input:?}: contains a NUL character")]
    PathNul { input: String },
    #[error(r#"invalid exec path {input:?}: not absolute; exec paths start with "/""#)]
    PathNotAbsolute { input: String },
    #[error(
        r#"exec path "/" would ban every executable; list the directories to ban instead, e.g. "/opt/Telegram/""#
    )]
    PathRoot,
    #[error(r#"invalid exec path {input:?}: empty component ("//")"#)]
    PathEmptyComponent { input: String },
    #[error(
        r#"invalid exec path {input:?}: "{component}" component; write the path without "." and ".." components"#
    )]
    PathDotComponent {
        input: String,
        component: &'static str,
    },
    #[error("exec name must not be empty")]
    NameEmpty,
    #[error("exec name is {bytes} bytes long; at most {MAX_EXEC_NAME_BYTES} are allowed")]
    NameTooLong { bytes: usize },
    #[error("invalid exec name {input:?}: contains a NUL character")]
    NameNul { input: String },
    #[error(
        r#"invalid exec name {input:?}: contains "/"; an exec name is a file name, put paths in `exec_paths`"#
    )]
    NameSlash { input: String },
    #[error("invalid exec name {input:?}: not a file name")]
    NameDot { input: String },
    #[error("invalid SHA-256 {input:?}: expected 64 hex digits, got {chars} characters")]
    Sha256Length { input: String, chars: usize },
    #[error("invalid SHA-256 {input:?}: {bad:?} (character {position}) is not a hex digit")]
    Sha256NotHex {
        input: String,
        bad: char,
        /// 1-based, in characters.
        position: usize,
    },
}

impl FromStr for ExecPath {
    type Err = ExecError;

    /// A trailing `/` makes a directory; it is not part of `path`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        // Length first, so that the other messages never quote a huge input.
        if input.len() > MAX_EXEC_PATH_BYTES {
            return Err(ExecError::PathTooLong { bytes: input.len() });
        }
        if input.contains('\0') {
            return Err(ExecError::PathNul {
                input: input.to_owned(),
            });
        }
        let Some(relative) = input.strip_prefix('/') else {
            return Err(ExecError::PathNotAbsolute {
                input: input.to_owned(),
            });
        };
        if relative.is_empty() {
            return Err(ExecError::PathRoot);
        }
        let (relative, directory) = match relative.strip_suffix('/') {
            Some(relative) => (relative, true),
            None => (relative, false),
        };
        // Paths are compared as written, so only one spelling of each path
        // is accepted.
        for component in relative.split('/') {
            let error = match component {
                "" => ExecError::PathEmptyComponent {
                    input: input.to_owned(),
                },
                "." | ".." => ExecError::PathDotComponent {
                    input: input.to_owned(),
                    component: if component == "." { "." } else { ".." },
                },
                _ => continue,
            };
            return Err(error);
        }
        Ok(ExecPath {
            path: PathBuf::from(&input[..1 + relative.len()]),
            directory,
        })
    }
}

/// Checks one `exec_names` entry: a file name, as the last component of a
/// path.
pub(super) fn check_exec_name(input: &str) -> Result<(), ExecError> {
    let error = if input.is_empty() {
        ExecError::NameEmpty
    } else if input.len() > MAX_EXEC_NAME_BYTES {
        ExecError::NameTooLong { bytes: input.len() }
    } else if input.contains('\0') {
        ExecError::NameNul {
            input: input.to_owned(),
        }
    } else if input.contains('/') {
        ExecError::NameSlash {
            input: input.to_owned(),
        }
    } else if input == "." || input == ".." {
        ExecError::NameDot {
            input: input.to_owned(),
        }
    } else {
        return Ok(());
    };
    Err(error)
}

impl FromStr for Sha256 {
    type Err = ExecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let chars = input.chars().count();
        if chars != SHA256_HEX_DIGITS {
            return Err(ExecError::Sha256Length {
                input: input.to_owned(),
                chars,
            });
        }
        if let Some((index, bad)) = input
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(ExecError::Sha256NotHex {
                input: input.to_owned(),
                bad,
                position: index + 1,
            });
        }
        // All 64 characters are ASCII hex digits, so 64 bytes.
        let digits = input.as_bytes();
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        Ok(Sha256(bytes))
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => unreachable!("checked to be a hex digit"),
    }
}

impl fmt::Display for ExecPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.directory {
            f.write_str("/")?;
        }
        Ok(())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// `Sha256("…")` in hex rather than a list of 32 numbers.
impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256(\"{self}\")")
    }
}

// Serde goes through the text form (see the `serde(into, try_from)` on the
// types), so deserialized values have passed the same checks as parsed ones.
impl From<ExecPath> for String {
    fn from(path: ExecPath) -> Self {
        path.to_string()
    }
}

impl TryFrom<String> for ExecPath {
    type Error = ExecError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Sha256> for String {
    fn from(hash: Sha256) -> Self {
        hash.to_string()
    }
}

impl TryFrom<String> for Sha256 {
    type Error = ExecError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(input: &str) -> Result<ExecPath, String> {
        input.parse::<ExecPath>().map_err(|e| e.to_string())
    }

    fn file(path: &str) -> ExecPath {
        ExecPath {
            path: path.into(),
            directory: false,
        }
    }

    fn dir(path: &str) -> ExecPath {
        ExecPath {
            path: path.into(),
            directory: true,
        }
    }

    #[test]
    fn paths_and_directories() {
        assert_eq!(
            path("/opt/Telegram/Telegram"),
            Ok(file("/opt/Telegram/Telegram"))
        );
        assert_eq!(path("/opt/Telegram/"), Ok(dir("/opt/Telegram")));
        assert_eq!(path("/a"), Ok(file("/a")));
        assert_eq!(path("/a/"), Ok(dir("/a")));
        // Only whole components are special.
        assert_eq!(path("/a/.b/..c/.../"), Ok(dir("/a/.b/..c/...")));
    }

    #[test]
    fn path_display_round_trips() {
        for text in ["/opt/Telegram/Telegram", "/opt/Telegram/", "/usr/bin/x y"] {
            assert_eq!(text.parse::<ExecPath>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_paths() {
        assert_eq!(
            path("opt/x"),
            Err(r#"invalid exec path "opt/x": not absolute; exec paths start with "/""#.into())
        );
        assert_eq!(
            path(""),
            Err(r#"invalid exec path "": not absolute; exec paths start with "/""#.into())
        );
        assert_eq!(
            path("/"),
            Err(r#"exec path "/" would ban every executable; list the directories to ban instead, e.g. "/opt/Telegram/""#.into())
        );
        assert_eq!(
            path("//"),
            Err(r#"invalid exec path "//": empty component ("//")"#.into())
        );
        assert_eq!(
            path("/opt//x"),
            Err(r#"invalid exec path "/opt//x": empty component ("//")"#.into())
        );
        assert_eq!(
            path("/opt/x//"),
            Err(r#"invalid exec path "/opt/x//": empty component ("//")"#.into())
        );
        assert_eq!(
            path("/opt/./x"),
            Err(r#"invalid exec path "/opt/./x": "." component; write the path without "." and ".." components"#.into())
        );
        assert_eq!(
            path("/opt/.."),
            Err(r#"invalid exec path "/opt/..": ".." component; write the path without "." and ".." components"#.into())
        );
        assert_eq!(
            path("/opt/x\0"),
            Err(r#"invalid exec path "/opt/x\0": contains a NUL character"#.into())
        );
    }

    #[test]
    fn path_length_limit() {
        let longest = format!("/{}", "x".repeat(MAX_EXEC_PATH_BYTES - 1));
        assert_eq!(path(&longest).unwrap().to_string(), longest);
        let longest_dir = format!("/{}/", "x".repeat(MAX_EXEC_PATH_BYTES - 2));
        assert!(path(&longest_dir).unwrap().directory);
        assert_eq!(
            path(&format!("{longest}x")),
            Err("exec path is 4097 bytes long; at most 4096 are allowed".into())
        );
        // Bytes, not characters: "é" is two.
        assert_eq!(
            path(&format!("/{}", "é".repeat(2048))),
            Err("exec path is 4097 bytes long; at most 4096 are allowed".into())
        );
    }

    #[test]
    fn names() {
        let check = |name: &str| check_exec_name(name).map_err(|e| e.to_string());
        assert_eq!(check("telegram-desktop"), Ok(()));
        assert_eq!(check(".hidden"), Ok(()));
        assert_eq!(check("..."), Ok(()));
        assert_eq!(check(&"x".repeat(255)), Ok(()));
        assert_eq!(check(""), Err("exec name must not be empty".into()));
        assert_eq!(
            check(&"x".repeat(256)),
            Err("exec name is 256 bytes long; at most 255 are allowed".into())
        );
        assert_eq!(
            check(&"é".repeat(128)),
            Err("exec name is 256 bytes long; at most 255 are allowed".into())
        );
        assert_eq!(
            check("a\0"),
            Err(r#"invalid exec name "a\0": contains a NUL character"#.into())
        );
        assert_eq!(
            check("bin/sh"),
            Err(r#"invalid exec name "bin/sh": contains "/"; an exec name is a file name, put paths in `exec_paths`"#.into())
        );
        assert_eq!(
            check("."),
            Err(r#"invalid exec name ".": not a file name"#.into())
        );
        assert_eq!(
            check(".."),
            Err(r#"invalid exec name "..": not a file name"#.into())
        );
    }

    #[test]
    fn sha256_parses_either_case_and_displays_lowercase() {
        let lower = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let hash: Sha256 = lower.to_uppercase().parse().unwrap();
        assert_eq!(hash.0[..4], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(hash.0[31], 0xff);
        assert_eq!(hash.to_string(), lower);
        assert_eq!(format!("{hash:?}"), format!("Sha256(\"{lower}\")"));
        assert_eq!(lower.parse::<Sha256>(), Ok(hash));
    }

    #[test]
    fn bad_sha256() {
        let err = |s: &str| s.parse::<Sha256>().unwrap_err().to_string();
        assert_eq!(
            err("abc"),
            r#"invalid SHA-256 "abc": expected 64 hex digits, got 3 characters"#
        );
        assert_eq!(
            err(""),
            r#"invalid SHA-256 "": expected 64 hex digits, got 0 characters"#
        );
        let long = "a".repeat(65);
        assert_eq!(
            err(&long),
            format!(r#"invalid SHA-256 "{long}": expected 64 hex digits, got 65 characters"#)
        );
        let bad = format!("{}g{}", "a".repeat(4), "a".repeat(59));
        assert_eq!(
            err(&bad),
            format!(r#"invalid SHA-256 "{bad}": 'g' (character 5) is not a hex digit"#)
        );
        // Characters, not bytes: 63 digits and an "é" are 64 characters.
        let accented = format!("{}é", "a".repeat(63));
        assert_eq!(
            err(&accented),
            format!(r#"invalid SHA-256 "{accented}": 'é' (character 64) is not a hex digit"#)
        );
        let prefixed = format!("0x{}", "a".repeat(62));
        assert_eq!(
            err(&prefixed),
            format!(r#"invalid SHA-256 "{prefixed}": 'x' (character 2) is not a hex digit"#)
        );
    }

    #[test]
    fn serde_goes_through_the_text_form() {
        let hash = "AB".repeat(32);
        let parsed: Sha256 = serde_json::from_str(&format!("\"{hash}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            format!("\"{}\"", "ab".repeat(32))
        );
        assert!(serde_json::from_str::<Sha256>("\"ab\"").is_err());

        let dir: ExecPath = serde_json::from_str(r#""/opt/Telegram/""#).unwrap();
        assert_eq!(dir, self::dir("/opt/Telegram"));
        assert_eq!(serde_json::to_string(&dir).unwrap(), r#""/opt/Telegram/""#);
        assert!(serde_json::from_str::<ExecPath>(r#""/""#).is_err());
        assert!(serde_json::from_str::<ExecPath>(r#""opt""#).is_err());
    }
}
