//! Policy files: parsing and validation into typed rules.
//!
//! The format is described in `policies/README.md`. Everything here is pure
//! except [`load_files`], [`read_files`] and [`files_in_dir`], which only
//! read the files and hand them to the checker, and [`shared_targets`],
//! which looks at the links an `exec_paths` entry may be. Validation reports every problem it can find,
//! each as `FILE:LINE:COL: message`, so one `enforcer policy check` run is
//! enough to fix a file.

mod checker;
mod cidr;
mod context;
pub mod diff;
mod document;
mod domain;
mod exec;
mod include;
mod links;
mod load;
mod model;
mod options;
mod rule_check;
mod rule_keys;
mod source;
mod span;
#[cfg(test)]
mod tests;
mod values;

pub use cidr::{Cidr, CidrError};
pub use domain::{Domain, DomainError, MAX_DOMAIN_BYTES, MAX_LABEL_BYTES};
pub use exec::{ExecError, ExecPath, MAX_EXEC_NAME_BYTES, MAX_EXEC_PATH_BYTES, Sha256};
pub use include::{IN_MODE_NAME, in_mode};
pub use links::{SharedTarget, shared_targets};
pub use load::{PolicyDirError, files_in_dir, load_files, parse, read_files};
pub use model::{DomainSwitches, Mode, Origin, Policy, PortRange, ProtocolSet, Rule, RuleKind};
pub use options::{FilesystemSet, MAX_DNS_TTL_SECONDS, OptionValue, Options, Trust};
pub use source::{PolicyError, PolicyErrors, Source};
