//! Which exec hook program runs: how it stops an exec, and what it judges
//! an executable by.

use enforcer_common::{
    exec::ExecMethod,
    names::{PROG_EXEC_LSM, PROG_EXEC_LSM_BY_FILE, PROG_EXEC_SIGNAL, PROG_EXEC_SIGNAL_BY_FILE},
};

/// The exec hook that loaded: how it stops an exec, and what it judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExecHook {
    pub method: ExecMethod,
    pub(crate) judges: ExecJudges,
}

impl ExecHook {
    /// The object's program of this hook.
    pub(crate) fn program(self) -> &'static str {
        self.judges.program(self.method)
    }

    /// How status names its method.
    pub(crate) fn method_name(self) -> &'static str {
        match self.method {
            ExecMethod::Lsm => "lsm",
            ExecMethod::Signal => "signal",
        }
    }
}

/// What an exec hook program judges an executable by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecJudges {
    /// Its file, its directories and its name.
    Names,
    /// Its file and its directories: the `_by_file` variants.
    FileAlone,
}

impl ExecJudges {
    /// The object's exec hook program for `method`.
    pub(crate) fn program(self, method: ExecMethod) -> &'static str {
        match (self, method) {
            (Self::Names, ExecMethod::Lsm) => PROG_EXEC_LSM,
            (Self::Names, ExecMethod::Signal) => PROG_EXEC_SIGNAL,
            (Self::FileAlone, ExecMethod::Lsm) => PROG_EXEC_LSM_BY_FILE,
            (Self::FileAlone, ExecMethod::Signal) => PROG_EXEC_SIGNAL_BY_FILE,
        }
    }
}
