//! The embedded eBPF object, opened with this kernel's struct offsets.

use std::{path::PathBuf, sync::Arc};

use aya::{Btf, Ebpf, EbpfLoader};
use enforcer_common::{
    exec::{EXEC_OFFSETS_GLOBAL, ExecOffsets},
    guard::{GUARD_OFFSETS_GLOBAL, GuardOffsets},
    names::MAP_GENERATION_SIZED,
};

use crate::{
    host::kallsyms,
    kernel::{
        btf::{self, BtfError, KernelBtf},
        maps,
        pins::Pins,
        programs::error::ProgramsError,
    },
};

/// The kernel programs, built by `cargo xtask build`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer.bpf.o"));

/// The embedded object, opened with this kernel's struct offsets and a
/// sized slot of `capacity` words pinned in `pins`, and not one program
/// loaded yet. Each part the kernel's BTF gives is there, or why not.
pub struct Object {
    pub ebpf: Ebpf,
    pub sized_slot: PathBuf,
    pub offsets: Result<ExecOffsets, Arc<BtfError>>,
    pub guard_offsets: Result<GuardOffsets, Arc<BtfError>>,
    pub btf: Result<Btf, Arc<aya::BtfError>>,
}

impl Object {
    pub fn open(pins: &Pins, capacity: u32) -> Result<Self, ProgramsError> {
        if OBJECT.is_empty() {
            return Err(ProgramsError::NotEmbedded);
        }
        let struct_btf = KernelBtf::load().map_err(Arc::new);
        let offsets = struct_btf
            .as_ref()
            .map_err(Arc::clone)
            .and_then(|btf| btf::exec_offsets(btf).map_err(Arc::new))
            .map(|offsets| ExecOffsets {
                put_work_function: put_work_function(),
                ..offsets
            });
        let guard_offsets = struct_btf
            .as_ref()
            .map_err(Arc::clone)
            .and_then(|btf| btf::guard_offsets(btf).map_err(Arc::new));
        let sized_slot = pins.map_path(MAP_GENERATION_SIZED);
        maps::create_sized_slot(capacity, &sized_slot)?;
        let mut loader = EbpfLoader::new();
        loader.map_pin_path(MAP_GENERATION_SIZED, sized_slot.clone());
        if let Ok(offsets) = &offsets {
            loader.override_global(EXEC_OFFSETS_GLOBAL, offsets, true);
        }
        if let Ok(offsets) = &guard_offsets {
            loader.override_global(GUARD_OFFSETS_GLOBAL, offsets, true);
        }
        let ebpf = loader.load(OBJECT).map_err(ProgramsError::Object)?;
        Ok(Self {
            ebpf,
            sized_slot,
            offsets,
            guard_offsets,
            btf: Btf::from_sys_fs().map_err(Arc::new),
        })
    }
}

/// The address of `____fput`, by which the signal method finds the script
/// an exec ran (see `ExecOffsets::put_work_function`); 0 where kallsyms
/// does not show it, and then scripts are judged by their interpreter
/// alone, which the log says.
fn put_work_function() -> u64 {
    const SYMBOL: &str = "____fput";
    let unseen = |why: String| {
        log::warn!("{why}: the exec tracepoint judges scripts by their interpreter alone");
        0
    };
    match kallsyms::text_address(SYMBOL) {
        Ok(Some(address)) => address,
        Ok(None) => unseen(format!("kallsyms shows no address for {SYMBOL}")),
        Err(error) => unseen(format!("reading kallsyms: {error}")),
    }
}
