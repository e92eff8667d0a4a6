//! Why a family's programs do not run on a host, typed until a report
//! renders it.

use std::sync::Arc;

use aya::{maps::MapError, programs::ProgramError};

use crate::kernel::{btf::BtfError, guard::GuardError};

/// Why a family's programs do not run on this host. Cloned into each
/// report of it, so the errors it wraps are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("refused by --refuse-family, a test hook; the kernel was not asked")]
    TestHook,
    #[error("bpf is not among the active LSMs")]
    NoBpfLsm,
    #[error("no kernel BTF: {0}")]
    NoBtf(Arc<aya::BtfError>),
    #[error("cannot read kernel struct offsets from BTF: {0}")]
    Offsets(Arc<BtfError>),
    #[error("program {name}: {refused}")]
    Program {
        name: &'static str,
        refused: LoadRefused,
    },
    #[error("BPF LSM: {lsm}; exec tracepoint: {tracepoint}")]
    ExecHooks {
        lsm: Box<Refusal>,
        tracepoint: Box<Refusal>,
    },
    #[error("with file names: {with_names}; by file alone: {by_file}")]
    ExecVariants {
        with_names: Box<Refusal>,
        by_file: Box<Refusal>,
    },
    #[error("it works with the exec hook, which is unavailable: {0}")]
    NeedsExec(Box<Refusal>),
    #[error(
        "it hashes file names in a claimed buffer, as the exec hook that judges names does, \
         and that hook is unavailable: {0}"
    )]
    NeedsExecNames(Box<Refusal>),
    #[error("registering the enforcer's objects with the guard failed: {0}")]
    Registration(Arc<GuardError>),
    #[error("its loader thread panicked")]
    Panicked,
    #[error("program array {map}: {source}")]
    ProgramArray {
        map: &'static str,
        source: Arc<MapError>,
    },
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
}

impl Refusal {
    pub fn program(name: &'static str, error: &ProgramError) -> Self {
        Self::Program {
            name,
            refused: LoadRefused::of(error),
        }
    }
}

/// What the kernel (or aya) answered to one program's load, short enough
/// for an event: a verifier log can run to megabytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}")]
pub struct LoadRefused {
    pub summary: String,
    /// The verifier gave up on its size (E2BIG): more than a million
    /// instructions processed.
    pub too_large: bool,
}

/// Lines of the verifier's log kept from its start: they say where it
/// stopped being able to follow.
const LOG_HEAD_LINES: usize = 2;

impl LoadRefused {
    pub fn of(error: &ProgramError) -> Self {
        let ProgramError::LoadError {
            io_error,
            verifier_log,
        } = error
        else {
            return Self {
                summary: error.to_string(),
                too_large: false,
            };
        };
        let log = verifier_log.to_string();
        let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
        // The verifier's tally, which says how far it got, and the line
        // before its statistics, which says why it stopped.
        let processed = lines
            .iter()
            .rposition(|line| line.starts_with("processed "));
        let reason = processed.and_then(|tally| {
            lines[..tally].iter().rposition(|line| {
                !["verification time", "stack depth"]
                    .iter()
                    .any(|statistic| line.starts_with(statistic))
            })
        });
        let mut kept: Vec<&str> = lines.iter().take(LOG_HEAD_LINES).copied().collect();
        for index in [reason, processed].into_iter().flatten() {
            if index < LOG_HEAD_LINES {
                continue;
            }
            if kept.len() == LOG_HEAD_LINES && index > LOG_HEAD_LINES {
                kept.push("...");
            }
            kept.push(lines[index]);
        }
        let summary = if kept.is_empty() {
            format!("the kernel refused it: {io_error}")
        } else {
            format!(
                "the kernel refused it: {io_error}; verifier: {}",
                kept.join(" | ")
            )
        };
        Self {
            summary,
            too_large: io_error.raw_os_error() == Some(libc::E2BIG),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(log: &str, errno: i32) -> LoadRefused {
        LoadRefused::of(&ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(log.to_string()),
        })
    }

    #[test]
    fn a_refusal_keeps_the_log_head_the_verifiers_reason_and_its_tally() {
        let log = "0: R1=ctx() R10=fp0\n; let x @ a.rs:1\n1: (bf) r6 = r1\n2: (79) r2 = *(u64 *)(r6 +0)\n\
                   R2 !read_ok\nverification time 12 usec\nstack depth 40\n\
                   processed 3149 insns (limit 1000000) max_states_per_insn 4\n";
        let refusal = refused(log, libc::EACCES);
        assert_eq!(
            refusal.summary,
            "the kernel refused it: Permission denied (os error 13); verifier: 0: R1=ctx() R10=fp0 \
             | ; let x @ a.rs:1 | ... | R2 !read_ok | processed 3149 insns (limit 1000000) \
             max_states_per_insn 4"
        );
        assert!(!refusal.too_large);
    }

    #[test]
    fn a_refusal_for_size_is_too_large() {
        let log = "0: R1=ctx()\nBPF program is too large. Processed 1000001 insn\n\
                   processed 1000001 insns (limit 1000000)\n";
        let refusal = refused(log, libc::E2BIG);
        assert!(refusal.too_large);
        assert!(
            refusal
                .summary
                .ends_with("verifier: 0: R1=ctx() | BPF program is too large. Processed 1000001 insn | processed 1000001 insns (limit 1000000)"),
            "{}",
            refusal.summary
        );
    }
}
