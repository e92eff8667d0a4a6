//! `/etc/enforcer/enforcer.toml`: the daemon's settings, the same as the
//! flags of `enforcer run`, for a service to start with no arguments. A
//! flag given on the command line wins over the file.
//!
//! ```toml
//! policy_dir = "/etc/enforcer/policy.d"
//! control_group = "enforcer-admins"
//! trusted_keys = ["/etc/enforcer/fleet.pub"]
//! syslog = "/dev/log"
//! require = ["network", "exec"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::kernel::family::Family;

pub const DEFAULT_CONFIG: &str = "/etc/enforcer/enforcer.toml";

/// Every key is optional; see `enforcer run --help` for what each does.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub policy: Vec<PathBuf>,
    /// A directory of policy files (`--policy-dir`).
    pub policy_dir: Option<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub syslog: Option<PathBuf>,
    /// `--event-format`.
    pub event_format: Option<crate::events::EventFormat>,
    #[serde(default)]
    pub hash_roots: Vec<PathBuf>,
    pub pin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub control_group: Option<String>,
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Program families that must load (`--require`).
    #[serde(default)]
    pub require: Vec<Family>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The settings in `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let at = error.span().map_or(0, |span| span.start);
        let before = &text[..at.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |tail| tail.chars().count())
            + 1;
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: error.message().replace('\n', "; "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads() {
        let config = parse(
            Path::new("c.toml"),
            r#"
policy = ["/etc/enforcer/a.toml"]
cgroup = "/sys/fs/cgroup/x"
control_group = "admins"
trusted_keys = ["/etc/enforcer/k.pub"]
syslog = "/dev/log"
event_format = "ecs"
require = ["domains", "exec"]
"#,
        )
        .unwrap();
        assert_eq!(config.event_format, Some(crate::EventFormat::Ecs));
        assert_eq!(config.policy, [PathBuf::from("/etc/enforcer/a.toml")]);
        assert_eq!(config.control_group.as_deref(), Some("admins"));
        assert_eq!(config.syslog, Some(PathBuf::from("/dev/log")));
        assert_eq!(config.pin_dir, None);
        assert_eq!(config.require, [Family::Domains, Family::Exec]);
    }

    #[test]
    fn an_unknown_family_to_require_is_reported_where_it_is() {
        let error = parse(Path::new("c.toml"), "require = [\"dns\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.toml:1:"), "{error}");
        assert!(
            error.contains("dns") && error.contains("domains"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_reported_where_it_is() {
        let error = parse(Path::new("c.toml"), "policy = []\npin_dri = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.toml:2:1: "), "{error}");
        assert!(error.contains("pin_dri"), "{error}");
    }
}
