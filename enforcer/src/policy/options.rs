//! Policy-wide settings: the `[options]` table, one field per key.

use std::fmt;

use enforcer_common::exec::UNTRUSTED_FILESYSTEMS;
use serde::{Deserialize, Serialize};

/// Policy-wide settings, from the `[options]` tables of the policy's files.
/// `policies/README.md` says what each does; [`Options::default`] gives
/// their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Also stop executables that have no name in any directory (memfd,
    /// `O_TMPFILE`, deleted after being opened).
    pub exec_block_anonymous: bool,
    /// Also stop banned files started through the dynamic loader, when
    /// they are mapped executable.
    pub exec_block_loader: bool,
    /// Make every exec of a not-yet-hashed file wait for its hash, so
    /// `exec_sha256` rules have no window.
    pub exec_hash_strict: bool,
    /// Let only trusted files start a process: owned by root and writable
    /// by nobody else, with every directory above them, on a filesystem
    /// that is neither distrusted nor mounted in a user namespace.
    pub exec_trusted_only: Trust,
    /// The filesystems `exec_trusted_only` distrusts.
    pub exec_untrusted_filesystems: FilesystemSet,
    /// Refuse DNS over TLS and over QUIC (port 853) to every address.
    pub block_dot: bool,
    /// Refuse QUIC (UDP 443) to every address, so that browsers fall back
    /// to TCP.
    pub block_quic: bool,
    /// Drop DNS queries for the names that rules block, whichever resolver
    /// they go to. Off, the kernel still learns the addresses of those
    /// names from the answers and checks TLS server names.
    pub dns_block_queries: bool,
    /// Addresses learned from a DNS answer for a blocked name stay blocked
    /// for the answer's TTL, but at least this long: a short TTL must not
    /// let the client reconnect as soon as it expires.
    pub dns_ttl_min_seconds: u32,
    /// ...and at most this long, so that an address the name moved away
    /// from is released. Never less than `dns_ttl_min_seconds`.
    pub dns_ttl_max_seconds: u32,
    /// How long the destination of a refused ClientHello stays refused to
    /// the uid that sent it: short, as it may be a proxy.
    pub sni_learned_seconds: u32,
    /// Addresses learned from answers that sockets of uids below this
    /// received bind everyone; above, only the receiving uid.
    pub learned_shared_below_uid: u32,
    /// How many learned addresses each uid may hold.
    pub learned_per_user: u32,
}

/// The largest `dns_ttl_*_seconds`: a week, which is what resolvers keep
/// an answer at most (BIND's `max-cache-ttl`).
pub const MAX_DNS_TTL_SECONDS: u32 = 604_800;

/// The most addresses `learned_per_user` lets one uid hold: a quarter of
/// the learned map, so that a few users at their quota cannot fill it.
const MAX_LEARNED_PER_USER: u32 = enforcer_common::learned::LEARNED_CAPACITY / 4;

/// What `exec_trusted_only` does with an exec of an untrusted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Nothing: trust is not checked.
    Off,
    /// Reports it, and lets it run: to pilot trust on a group first.
    Audit,
    /// Stops it.
    Enforce,
}

/// Filesystems of [`UNTRUSTED_FILESYSTEMS`], a bit each, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilesystemSet(u16);

impl FilesystemSet {
    /// No filesystem.
    pub const NONE: Self = Self(0);

    /// Every known filesystem but squashfs, which snaps are mounted from,
    /// root-owned: what a user can fill (tmpfs, ramfs), what can claim any
    /// owner (FUSE), and removable media.
    pub fn recommended() -> Self {
        Self::from_names([
            "tmpfs", "ramfs", "fuse", "vfat", "exfat", "ntfs", "iso9660", "udf",
        ])
        .expect("the recommended filesystems are known")
    }

    /// The set of `names`, or the first name that is no known filesystem.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut set = Self::NONE;
        for name in names {
            set.insert(name).ok_or(name)?;
        }
        Ok(set)
    }

    /// Adds the filesystem `name`: `Some(false)` when the set had it
    /// already, `None` when no known filesystem has that name.
    pub fn insert(&mut self, name: &str) -> Option<bool> {
        let bit = 1 << Self::index(name)?;
        let added = self.0 & bit == 0;
        self.0 |= bit;
        Some(added)
    }

    /// The names in the set, in [`UNTRUSTED_FILESYSTEMS`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        UNTRUSTED_FILESYSTEMS
            .iter()
            .enumerate()
            .filter(move |&(index, _)| self.0 & 1 << index != 0)
            .map(|(_, &(name, _))| name)
    }

    /// The set of these bits of [`FilesystemSet::bits`].
    #[cfg(test)]
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The bits the kernel reads (see `exec::distrusts_filesystem`).
    pub fn bits(self) -> u64 {
        u64::from(self.0)
    }

    fn index(name: &str) -> Option<usize> {
        UNTRUSTED_FILESYSTEMS
            .iter()
            .position(|&(known, _)| known == name)
    }
}

/// The value of one `[options]` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionValue {
    Bool(bool),
    Trust(Trust),
    Filesystems(FilesystemSet),
    /// A duration, 1 to [`MAX_DNS_TTL_SECONDS`] seconds.
    Seconds(u32),
    /// A uid or a count, within the key's [`Options::number_range`].
    Number(u32),
}

/// Where the value of one `[options]` key lives, by its type.
#[derive(Clone, Copy)]
enum OptionField {
    Bool(fn(&mut Options) -> &mut bool),
    Trust(fn(&mut Options) -> &mut Trust),
    Filesystems(fn(&mut Options) -> &mut FilesystemSet),
    Seconds(fn(&mut Options) -> &mut u32),
    Number(fn(&mut Options) -> &mut u32, (u32, u32)),
}

impl Default for Options {
    /// The switches that cost something or can break programs are off;
    /// dropping queries for blocked names is on, since a rule that lists
    /// domains asks for it. The TTL bounds keep a blocked address at least
    /// five minutes and at most a day after its last answer; a ClientHello
    /// blocks its destination for two minutes.
    fn default() -> Self {
        Self {
            exec_block_anonymous: false,
            exec_block_loader: false,
            exec_hash_strict: false,
            exec_trusted_only: Trust::Off,
            exec_untrusted_filesystems: FilesystemSet::recommended(),
            block_dot: false,
            block_quic: false,
            dns_block_queries: true,
            dns_ttl_min_seconds: 300,
            dns_ttl_max_seconds: 86_400,
            sni_learned_seconds: 120,
            // `UID_MIN` of login.defs on Debian, Astra and RPM systems.
            learned_shared_below_uid: 1000,
            learned_per_user: 4096,
        }
    }
}

impl Options {
    /// Every `[options]` key, in the order errors and the README list them.
    /// A new option is a field above, its default, and one line here.
    const FIELDS: &[(&'static str, OptionField)] = &[
        (
            "exec_block_anonymous",
            OptionField::Bool(|o| &mut o.exec_block_anonymous),
        ),
        (
            "exec_block_loader",
            OptionField::Bool(|o| &mut o.exec_block_loader),
        ),
        (
            "exec_hash_strict",
            OptionField::Bool(|o| &mut o.exec_hash_strict),
        ),
        (
            "exec_trusted_only",
            OptionField::Trust(|o| &mut o.exec_trusted_only),
        ),
        (
            "exec_untrusted_filesystems",
            OptionField::Filesystems(|o| &mut o.exec_untrusted_filesystems),
        ),
        ("block_dot", OptionField::Bool(|o| &mut o.block_dot)),
        ("block_quic", OptionField::Bool(|o| &mut o.block_quic)),
        (
            "dns_block_queries",
            OptionField::Bool(|o| &mut o.dns_block_queries),
        ),
        (
            "dns_ttl_min_seconds",
            OptionField::Seconds(|o| &mut o.dns_ttl_min_seconds),
        ),
        (
            "dns_ttl_max_seconds",
            OptionField::Seconds(|o| &mut o.dns_ttl_max_seconds),
        ),
        (
            "sni_learned_seconds",
            OptionField::Seconds(|o| &mut o.sni_learned_seconds),
        ),
        (
            "learned_shared_below_uid",
            OptionField::Number(|o| &mut o.learned_shared_below_uid, (0, u32::MAX - 1)),
        ),
        (
            "learned_per_user",
            OptionField::Number(|o| &mut o.learned_per_user, (1, MAX_LEARNED_PER_USER)),
        ),
    ];

    /// The values a number option takes, inclusive; `None` for any other
    /// key.
    pub fn number_range(key: &str) -> Option<(u32, u32)> {
        Self::FIELDS.iter().find_map(|&(name, field)| match field {
            OptionField::Number(_, range) if name == key => Some(range),
            _ => None,
        })
    }

    /// The names of all keys `[options]` accepts.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        Self::FIELDS.iter().map(|&(key, _)| key)
    }

    /// Every option with its value, in [`Options::keys`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, OptionValue)> + '_ {
        Self::FIELDS.iter().map(|&(key, field)| {
            let mut copy = *self;
            let value = match field {
                OptionField::Bool(field) => OptionValue::Bool(*field(&mut copy)),
                OptionField::Trust(field) => OptionValue::Trust(*field(&mut copy)),
                OptionField::Filesystems(field) => OptionValue::Filesystems(*field(&mut copy)),
                OptionField::Seconds(field) => OptionValue::Seconds(*field(&mut copy)),
                OptionField::Number(field, _) => OptionValue::Number(*field(&mut copy)),
            };
            (key, value)
        })
    }

    /// The option named `key`, or `None` when there is no such option.
    pub fn get(&self, key: &str) -> Option<OptionValue> {
        self.iter()
            .find_map(|(name, value)| (name == key).then_some(value))
    }

    /// Sets the option named `key`, and tells whether it did: nothing
    /// changes when there is no such option or `value` is of another type.
    /// Ranges are not checked here; [`parse()`](super::load::parse) checks them.
    pub fn set(&mut self, key: &str, value: OptionValue) -> bool {
        let Some(&(_, field)) = Self::FIELDS.iter().find(|&&(name, _)| name == key) else {
            return false;
        };
        match (field, value) {
            (OptionField::Bool(field), OptionValue::Bool(value)) => *field(self) = value,
            (OptionField::Trust(field), OptionValue::Trust(value)) => *field(self) = value,
            (OptionField::Filesystems(field), OptionValue::Filesystems(value)) => {
                *field(self) = value
            }
            (OptionField::Seconds(field), OptionValue::Seconds(value)) => *field(self) = value,
            (OptionField::Number(field, _), OptionValue::Number(value)) => *field(self) = value,
            _ => return false,
        }
        true
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bool(on) => write!(f, "{on}"),
            OptionValue::Trust(Trust::Off) => write!(f, "false"),
            OptionValue::Trust(Trust::Audit) => write!(f, "\"audit\""),
            OptionValue::Trust(Trust::Enforce) => write!(f, "true"),
            OptionValue::Filesystems(set) => {
                let names: Vec<String> = set.names().map(|name| format!("{name:?}")).collect();
                write!(f, "[{}]", names.join(", "))
            }
            OptionValue::Seconds(seconds) => write!(f, "{seconds}"),
            OptionValue::Number(number) => write!(f, "{number}"),
        }
    }
}
