//! Names of the programs and maps in the eBPF object. Userspace finds them
//! by these names, so both sides spell them from here.

/// The IPv4 connect hook.
pub const PROG_CONNECT4: &str = "connect4";
/// The IPv6 connect hook.
pub const PROG_CONNECT6: &str = "connect6";
/// The IPv4 datagram hook.
pub const PROG_SENDMSG4: &str = "sendmsg4";
/// The IPv6 datagram hook.
pub const PROG_SENDMSG6: &str = "sendmsg6";

/// The socket programs in attach order.
pub const SOCKET_PROGRAMS: [&str; 4] = [PROG_CONNECT4, PROG_CONNECT6, PROG_SENDMSG4, PROG_SENDMSG6];

/// Array-of-maps with one slot for the live generation image, of any size.
pub const MAP_GENERATION: &str = "GENERATION";
/// Array-of-maps with one slot for the live generation image, of the
/// capacity userspace chose when it created this map. The hooks read an
/// image here first (see `crate::image::SIZED_IMAGE_MAP_FLAGS`).
pub const MAP_GENERATION_SIZED: &str = "GENERATION_SIZED";
/// Ring buffer of verdict events.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU counters, indexed by [`crate::counters::Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Per-CPU hit counts by generation, rule and action (see `crate::hits`).
pub const MAP_RULE_HITS: &str = "RULE_HITS";

/// Exec hooks: the BPF LSM one where the kernel allows it, else the
/// tracepoint that kills the new image. Each is a dispatcher that
/// tail-calls its variant for the live image's slot (see [`SlotVariants`]).
pub const PROG_EXEC_LSM: &str = "bprm_check_security";
/// The tracepoint dispatcher.
pub const PROG_EXEC_SIGNAL: &str = "sched_process_exec";
/// The BPF LSM variants, which judge executables by file, directories and
/// name.
pub const EXEC_LSM_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: PROG_EXEC_LSM,
    map: "EXEC_LSM_VARIANTS",
    sized: "bprm_check_sized",
    any_size: "bprm_check_any_size",
};
/// The same, judging by the file and its directories alone, not by its
/// name: for kernels that refuse the name hashing's atomics (before Linux
/// 5.12). The loader falls back to them.
pub const EXEC_LSM_BY_FILE_VARIANTS: SlotVariants = SlotVariants {
    sized: "bprm_check_sized_by_file",
    any_size: "bprm_check_any_size_by_file",
    ..EXEC_LSM_VARIANTS
};
/// The tracepoint's variants.
pub const EXEC_SIGNAL_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: PROG_EXEC_SIGNAL,
    map: "EXEC_SIGNAL_VARIANTS",
    sized: "sched_exec_sized",
    any_size: "sched_exec_any_size",
};
/// The tracepoint's variants that judge by file.
pub const EXEC_SIGNAL_BY_FILE_VARIANTS: SlotVariants = SlotVariants {
    sized: "sched_exec_sized_by_file",
    any_size: "sched_exec_any_size_by_file",
    ..EXEC_SIGNAL_VARIANTS
};
/// The script judges the tracepoint's variants that judge names
/// tail-call, by slot: the script an exec ran is judged apart from its
/// interpreter, by a program of its own.
pub const EXEC_SCRIPT_VARIANTS: SlotVariants = SlotVariants {
    map: "SCRIPT_VARIANTS",
    sized: "sched_script_sized",
    any_size: "sched_script_any_size",
    ..EXEC_SIGNAL_VARIANTS
};
/// Every exec hook program: dispatchers and variants.
pub const EXEC_PROGRAMS: [&str; 12] = [
    PROG_EXEC_LSM,
    EXEC_LSM_VARIANTS.sized,
    EXEC_LSM_VARIANTS.any_size,
    EXEC_LSM_BY_FILE_VARIANTS.sized,
    EXEC_LSM_BY_FILE_VARIANTS.any_size,
    PROG_EXEC_SIGNAL,
    EXEC_SIGNAL_VARIANTS.sized,
    EXEC_SIGNAL_VARIANTS.any_size,
    EXEC_SIGNAL_BY_FILE_VARIANTS.sized,
    EXEC_SIGNAL_BY_FILE_VARIANTS.any_size,
    EXEC_SCRIPT_VARIANTS.sized,
    EXEC_SCRIPT_VARIANTS.any_size,
];
/// The kernel functions those programs attach to.
pub const EXEC_LSM_HOOK: &str = "bprm_check_security";
/// The tracepoint the signal programs attach to.
pub const EXEC_TRACEPOINT: &str = "sched_process_exec";

/// Cgroup array whose slot 0 scopes the exec hooks.
pub const MAP_EXEC_SCOPE: &str = "EXEC_SCOPE";

/// The mapping hook of `exec_block_loader` and `exec_trusted_only`, and
/// its variants.
pub const MAPPING_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: "sys_enter_mmap",
    map: "MAPPING_VARIANTS",
    sized: "mmap_sized",
    any_size: "mmap_any_size",
};
/// The category and name of its tracepoint.
pub const MAPPING_TRACEPOINT: (&str, &str) = ("syscalls", "sys_enter_mmap");
/// Where BPF LSM runs, the mapping hook is two BPF LSM hooks instead,
/// each named after its hook: a mapping made executable from the start...
pub const MMAP_FILE_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: "mmap_file",
    map: "MMAP_FILE_VARIANTS",
    sized: "mmap_file_sized",
    any_size: "mmap_file_any_size",
};
/// ...and one made executable later.
pub const FILE_MPROTECT_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: "file_mprotect",
    map: "MPROTECT_VARIANTS",
    sized: "file_mprotect_sized",
    any_size: "file_mprotect_any_size",
};
/// Every program the mapping hook may be made of, by either method.
pub const MAPPING_PROGRAMS: [&str; 9] = [
    MAPPING_VARIANTS.dispatcher,
    MAPPING_VARIANTS.sized,
    MAPPING_VARIANTS.any_size,
    MMAP_FILE_VARIANTS.dispatcher,
    MMAP_FILE_VARIANTS.sized,
    MMAP_FILE_VARIANTS.any_size,
    FILE_MPROTECT_VARIANTS.dispatcher,
    FILE_MPROTECT_VARIANTS.sized,
    FILE_MPROTECT_VARIANTS.any_size,
];

/// The cgroup_skb programs that read DNS messages and TLS ClientHellos.
/// Each picks out the packets worth reading and tail-calls the variant of
/// itself that reads the slot the live image is in.
pub const PROG_EGRESS: &str = "egress";
/// The ingress dispatcher.
pub const PROG_INGRESS: &str = "ingress";

/// A program's variants, by the slot they read: the verifier follows a
/// program once for each slot an image may be in, so one variant per slot
/// halves what it checks in each program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotVariants {
    /// The program that tail-calls them.
    pub dispatcher: &'static str,
    /// The program array that holds them, at [`SIZED_SLOT_INDEX`] and
    /// [`ANY_SIZE_SLOT_INDEX`].
    pub map: &'static str,
    /// The variant that reads the sized slot.
    pub sized: &'static str,
    /// The variant that reads the slot of any size.
    pub any_size: &'static str,
}

impl SlotVariants {
    /// The dispatcher, then the variants.
    pub const fn programs(&self) -> [&'static str; 3] {
        [self.dispatcher, self.sized, self.any_size]
    }
}

/// Where the sized slot's variant sits in a variants array.
pub const SIZED_SLOT_INDEX: u32 = 0;
/// Where the any-size slot's variant sits in a variants array.
pub const ANY_SIZE_SLOT_INDEX: u32 = 1;

/// The egress program's variants.
pub const EGRESS_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: PROG_EGRESS,
    map: "EGRESS_VARIANTS",
    sized: "egress_sized",
    any_size: "egress_any_size",
};
/// The ingress program's variants.
pub const INGRESS_VARIANTS: SlotVariants = SlotVariants {
    dispatcher: PROG_INGRESS,
    map: "INGRESS_VARIANTS",
    sized: "ingress_sized",
    any_size: "ingress_any_size",
};

/// Addresses learned from DNS answers and TLS server names.
pub const MAP_LEARNED: &str = "LEARNED";
/// How many learned addresses the programs added for each owner.
pub const MAP_LEARNED_ADDED: &str = "LEARNED_ADDED";
/// How many of those the daemon deleted, less those it copied in.
pub const MAP_LEARNED_ADJUSTED: &str = "LEARNED_ADJUSTED";
/// Per-CPU room for a copied payload and a name.
pub const MAP_SCRATCH: &str = "SCRATCH";

/// Self-protection (see `crate::guard`): the objects guarded, the
/// executables trusted with them, and the daemon and pin filesystem.
pub const MAP_GUARDED: &str = "GUARDED";
/// The executables trusted.
pub const MAP_TRUSTED: &str = "TRUSTED";
/// The daemon and the pin filesystem.
pub const MAP_GUARD_STATE: &str = "GUARD_STATE";

/// The guard's BPF LSM programs, each named after the hook it attaches to.
pub const GUARD_PROGRAMS: [&str; 7] = [
    "bpf",
    "bpf_map",
    "bpf_prog",
    "inode_permission",
    "sb_umount",
    "task_kill",
    "ptrace_access_check",
];
