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

/// Exec hooks: the BPF LSM one where the kernel allows it, else the
/// tracepoint that kills the new image.
pub const PROG_EXEC_LSM: &str = "bprm_check_security";
/// The tracepoint program.
pub const PROG_EXEC_SIGNAL: &str = "sched_process_exec";
/// The same hooks judging by the file and its directories alone, not by
/// its name: for kernels that refuse the name hashing's atomics (before
/// Linux 5.12). The loader falls back to them.
pub const PROG_EXEC_LSM_BY_FILE: &str = "bprm_check_security_by_file";
/// The tracepoint program that judges by file.
pub const PROG_EXEC_SIGNAL_BY_FILE: &str = "sched_process_exec_by_file";
/// Every exec hook program.
pub const EXEC_PROGRAMS: [&str; 4] = [
    PROG_EXEC_LSM,
    PROG_EXEC_SIGNAL,
    PROG_EXEC_LSM_BY_FILE,
    PROG_EXEC_SIGNAL_BY_FILE,
];
/// The kernel functions those programs attach to.
pub const EXEC_LSM_HOOK: &str = "bprm_check_security";
/// The tracepoint the signal programs attach to.
pub const EXEC_TRACEPOINT: &str = "sched_process_exec";

/// Cgroup array whose slot 0 scopes the exec hooks.
pub const MAP_EXEC_SCOPE: &str = "EXEC_SCOPE";

/// The mapping hook of the `exec_block_loader` option, and its tracepoint.
pub const PROG_EXEC_MAPPING: &str = "sys_enter_mmap";
/// The category and name of its tracepoint.
pub const MAPPING_TRACEPOINT: (&str, &str) = ("syscalls", "sys_enter_mmap");

/// The cgroup_skb programs that read DNS messages and TLS ClientHellos.
/// Each picks out the packets worth reading and tail-calls the variant of
/// itself that reads the slot the live image is in.
pub const PROG_EGRESS: &str = "egress";
/// The ingress dispatcher.
pub const PROG_INGRESS: &str = "ingress";

/// A packet program's variants, by the slot they read: the verifier
/// follows a program once for each slot an image may be in, so one
/// variant per slot halves what it checks in each program.
pub struct PacketVariants {
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

/// Where the sized slot's variant sits in a variants array.
pub const SIZED_SLOT_INDEX: u32 = 0;
/// Where the any-size slot's variant sits in a variants array.
pub const ANY_SIZE_SLOT_INDEX: u32 = 1;

/// The egress program's variants.
pub const EGRESS_VARIANTS: PacketVariants = PacketVariants {
    dispatcher: PROG_EGRESS,
    map: "EGRESS_VARIANTS",
    sized: "egress_sized",
    any_size: "egress_any_size",
};
/// The ingress program's variants.
pub const INGRESS_VARIANTS: PacketVariants = PacketVariants {
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
