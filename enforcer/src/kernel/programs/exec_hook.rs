//! Which exec hook program runs: how it stops an exec, and what it judges
//! an executable by.

use enforcer_common::{
    exec::ExecMethod,
    names::{
        EXEC_LSM_BY_FILE_VARIANTS, EXEC_LSM_VARIANTS, EXEC_SCRIPT_VARIANTS,
        EXEC_SIGNAL_BY_FILE_VARIANTS, EXEC_SIGNAL_VARIANTS, SlotVariants,
    },
};

/// The exec hook that loaded: how it stops an exec, and what it judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExecHook {
    pub method: ExecMethod,
    pub(crate) judges: ExecJudges,
}

impl ExecHook {
    /// The object's programs of this hook.
    pub(crate) fn variants(self) -> SlotVariants {
        self.judges.variants(self.method)
    }

    /// The script judges its variants tail-call: the tracepoint's that
    /// judge names. BPF LSM judges a script in its own hook.
    pub(crate) fn script_variants(self) -> Option<SlotVariants> {
        self.judges.script_variants(self.method)
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
    /// The object's exec hook programs for `method`.
    pub(crate) fn variants(self, method: ExecMethod) -> SlotVariants {
        match (self, method) {
            (Self::Names, ExecMethod::Lsm) => EXEC_LSM_VARIANTS,
            (Self::Names, ExecMethod::Signal) => EXEC_SIGNAL_VARIANTS,
            (Self::FileAlone, ExecMethod::Lsm) => EXEC_LSM_BY_FILE_VARIANTS,
            (Self::FileAlone, ExecMethod::Signal) => EXEC_SIGNAL_BY_FILE_VARIANTS,
        }
    }

    /// The script judges for `method`, if its variants call any.
    pub(crate) fn script_variants(self, method: ExecMethod) -> Option<SlotVariants> {
        (self == Self::Names && method == ExecMethod::Signal).then_some(EXEC_SCRIPT_VARIANTS)
    }
}
