//! Exec tables: identities (files and directories by device and inode) and
//! file-name hashes, each with the decision of the rules that name it.

use std::collections::BTreeMap;

use enforcer_common::{
    decision::Decision,
    exec::{name_hash, options},
};

use super::classes::precedence;
use crate::{
    exec::resolve::{ExecIdentity, IdentityKind},
    policy::{Options, Policy, Trust},
};

#[derive(Debug, Default)]
pub(super) struct ExecTables {
    /// Each sorted by (dev, ino).
    pub files: Vec<(u32, u64, Decision)>,
    pub directories: Vec<(u32, u64, Decision)>,
    /// Sorted by hash.
    pub names: Vec<(u64, Decision)>,
    /// Bits of `enforcer_common::exec::options`.
    pub options: u64,
}

pub(super) fn tables(policy: &Policy, identities: &[ExecIdentity]) -> ExecTables {
    // The policy's own rules come first among the enforced ones, so their
    // indices are the same in both.
    let rules = &policy.rules;
    let mut files: BTreeMap<(u32, u64), Vec<u32>> = BTreeMap::new();
    let mut directories: BTreeMap<(u32, u64), Vec<u32>> = BTreeMap::new();
    for identity in identities {
        let table = match identity.kind {
            IdentityKind::File => &mut files,
            IdentityKind::Directory => &mut directories,
        };
        table
            .entry((identity.dev, identity.ino))
            .or_default()
            .push(identity.rule);
    }
    let mut names: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        for name in &rule.exec_names {
            names
                .entry(name_hash(name.as_bytes()))
                .or_default()
                .push(index as u32);
        }
    }
    let decide = |rule_indices: Vec<u32>| precedence(rules, rule_indices.into_iter());
    ExecTables {
        files: files
            .into_iter()
            .map(|((dev, ino), r)| (dev, ino, decide(r)))
            .collect(),
        directories: directories
            .into_iter()
            .map(|((dev, ino), r)| (dev, ino, decide(r)))
            .collect(),
        names: names
            .into_iter()
            .map(|(hash, r)| (hash, decide(r)))
            .collect(),
        options: option_bits(policy.options),
    }
}

fn option_bits(policy_options: Options) -> u64 {
    let mut bits = 0;
    if policy_options.exec_block_anonymous {
        bits |= options::BLOCK_ANONYMOUS;
    }
    if policy_options.exec_block_loader {
        bits |= options::BLOCK_LOADER;
    }
    match policy_options.exec_trusted_only {
        Trust::Off => {}
        Trust::Audit => bits |= options::TRUSTED_ONLY | options::TRUST_AUDIT,
        Trust::Enforce => bits |= options::TRUSTED_ONLY,
    }
    bits | policy_options.exec_untrusted_filesystems.bits() << options::UNTRUSTED_FILESYSTEM_SHIFT
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use enforcer_common::{
        decision::{Action, Decision},
        exec::name_hash,
        image::MAX_EXEC_DIRECTORIES,
        lookup::Generation,
    };

    use crate::{
        compile::compile,
        exec::resolve::{ExecIdentity, IdentityKind},
        policy::{Policy, Source, parse},
    };

    fn policy(text: &str) -> Policy {
        parse(&[Source {
            name: "p.toml".into(),
            text: text.into(),
        }])
        .unwrap()
    }

    fn identity(dev: u32, ino: u64, kind: IdentityKind, rule: u32) -> ExecIdentity {
        ExecIdentity {
            dev,
            ino,
            kind,
            rule,
            path: PathBuf::from("/x"),
        }
    }

    const POLICY: &str = r#"
version = 1
[[block]]
name = "app"
exec_paths = ["/opt/app/"]
exec_names = ["app-bin"]
[[block]]
name = "watched"
mode = "audit"
exec_paths = ["/usr/bin/watched"]
exec_names = ["app-bin", "watched"]
[[allow]]
name = "updater"
exec_paths = ["/opt/app/updater"]
"#;

    #[test]
    fn identities_and_names_carry_their_rules_decisions() {
        let policy = policy(POLICY);
        let identities = [
            identity(7, 100, IdentityKind::Directory, 0),
            identity(7, 101, IdentityKind::File, 0),
            identity(7, 102, IdentityKind::File, 0),
            identity(7, 102, IdentityKind::File, 2),
            identity(8, 5, IdentityKind::File, 1),
        ];
        let image = compile(&policy, &identities, 0).unwrap().image;
        let generation = Generation::new(image.as_slice());

        assert_eq!(
            generation.exec_directory(7, 100),
            Ok(Decision::new(Action::Block, 0))
        );
        assert_eq!(
            generation.exec_file(7, 100),
            Ok(Decision::NONE),
            "a directory is not a file"
        );
        assert_eq!(
            generation.exec_file(7, 101),
            Ok(Decision::new(Action::Block, 0))
        );
        assert_eq!(
            generation.exec_file(7, 102),
            Ok(Decision::new(Action::Allow, 2)),
            "allow wins"
        );
        assert_eq!(
            generation.exec_file(8, 5),
            Ok(Decision::new(Action::Audit, 1))
        );
        assert_eq!(
            generation.exec_file(8, 101),
            Ok(Decision::NONE),
            "same inode, other device"
        );
        assert_eq!(generation.exec_file(7, 99), Ok(Decision::NONE));
        assert_eq!(generation.exec_file(0, 0), Ok(Decision::NONE));
        assert_eq!(generation.exec_file(u32::MAX, u64::MAX), Ok(Decision::NONE));

        assert_eq!(
            generation.exec_name(name_hash(b"app-bin")),
            Ok(Decision::new(Action::Block, 0)),
            "enforce wins over audit"
        );
        assert_eq!(
            generation.exec_name(name_hash(b"watched")),
            Ok(Decision::new(Action::Audit, 1))
        );
        assert_eq!(
            generation.exec_name(name_hash(b"other")),
            Ok(Decision::NONE)
        );
    }

    #[test]
    fn every_directory_of_a_full_table_is_found_and_one_more_is_refused() {
        let policy = policy(POLICY);
        let limit = MAX_EXEC_DIRECTORIES as u64;
        let directories: Vec<_> = (0..limit)
            .map(|ino| identity(7, 1000 + ino * 3, IdentityKind::Directory, 0))
            .collect();
        let image = compile(&policy, &directories, 0).unwrap().image;
        let generation = Generation::new(image.as_slice());
        for ino in (0..limit).map(|i| 1000 + i * 3) {
            assert_eq!(
                generation.exec_directory(7, ino),
                Ok(Decision::new(Action::Block, 0)),
                "inode {ino}"
            );
            assert_eq!(generation.exec_directory(7, ino + 1), Ok(Decision::NONE));
        }

        let one_more = [
            directories,
            vec![identity(8, 1, IdentityKind::Directory, 0)],
        ]
        .concat();
        let error = compile(&policy, &one_more, 0).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "the policy names {} exec directories; at most {limit} are supported",
                limit + 1
            )
        );
    }

    #[test]
    fn a_policy_without_exec_rules_has_empty_exec_tables() {
        let policy = policy("version = 1\n[[block]]\nname = \"n\"\ncidrs = [\"10.0.0.0/8\"]\n");
        let image = compile(&policy, &[], 0).unwrap().image;
        let generation = Generation::new(image.as_slice());
        assert_eq!(generation.has_exec_files(), Ok(false));
        assert_eq!(generation.has_exec_directories(), Ok(false));
        assert_eq!(generation.has_exec_names(), Ok(false));
        assert_eq!(generation.exec_file(1, 1), Ok(Decision::NONE));
    }
}
