//! Kernel struct member offsets from the running kernel's BTF.
//!
//! Rust eBPF has no CO-RE relocations, so the kernel programs cannot ask the
//! loader to patch field accesses. Instead the daemon reads the offsets it
//! needs from `/sys/kernel/btf/vmlinux` at start and hands them to the
//! programs as globals ([`exec_offsets`]).
//!
//! The BTF is read by a small reader of its own (`parse`); this module
//! follows member paths through it. Libraries were weighed and do not fit:
//! - `aya-obj` (0.3.0, already a dependency) parses BTF, but only for
//!   loading programs: `Btf::types`, `Btf::type_by_id` and `Btf::string_at`
//!   are `pub(crate)`, and so are `Struct::members` and the `BtfMember`
//!   fields (name, type, bit offset), so it cannot tell a member's offset
//!   (`src/btf/btf.rs` and `src/btf/types.rs` in aya-obj 0.3.0). What it
//!   does offer, the kind numbering ([`BtfKind`]), is used here.
//! - `btf-rs` (2.0), the maintained BTF library, is LGPL-2.1-or-later,
//!   which this MIT OR Apache-2.0 project does not take in.
//! - `libbpf-rs` builds libbpf's C sources (and needs libelf and zlib) for
//!   what is a few hundred lines of bounds-checked reading.

mod model;
mod parse;

use aya_obj::btf::BtfKind;
use enforcer_common::{exec::ExecOffsets, guard::GuardOffsets};
pub(crate) use model::{BtfError, KernelBtf, VMLINUX_BTF_PATH};
use model::{Member, Type, TypeData, malformed};

/// Bounds the modifier chains and anonymous-member nesting followed, so a
/// cyclic (malformed) file cannot recurse without end.
const MAX_DEPTH: usize = 64;

/// A member found by name: where it starts and what it is.
#[derive(Clone, Copy, Debug)]
struct Found {
    offset: u32,
    type_id: u32,
}

impl KernelBtf {
    fn display_name(&self, ty: &Type) -> String {
        match self.name(ty.name_off) {
            [] => "<anonymous>".to_owned(),
            name => String::from_utf8_lossy(name).into_owned(),
        }
    }

    /// Follows typedefs and qualifiers (const, volatile, restrict, type
    /// tags) to the type they name. Pointers are not followed.
    fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let ty = self.ty(id)?;
            match ty.kind {
                BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::TypeTag => {
                    id = ty.size_or_type;
                }
                _ => return Ok(id),
            }
        }
        Err(malformed(format!(
            "typedef/qualifier chain through type {id} is longer than {MAX_DEPTH} (a cycle?)"
        )))
    }

    /// The struct or union named `name`: the first one with members, or
    /// the first empty one if none has members.
    fn find_composite(&self, name: &str) -> Result<u32, BtfError> {
        let mut empty = None;
        for (id, ty) in self.types.iter().enumerate() {
            if matches!(ty.kind, BtfKind::Struct | BtfKind::Union)
                && self.name(ty.name_off) == name.as_bytes()
            {
                // Type ids are u32 on the wire, so this cannot truncate.
                let id = id as u32;
                if self.members_of(ty).is_empty() {
                    empty.get_or_insert(id);
                } else {
                    return Ok(id);
                }
            }
        }
        empty.ok_or_else(|| BtfError::StructNotFound(name.to_owned()))
    }

    /// Byte offset of a member of a struct or union.
    fn member_byte_offset(
        &self,
        parent: &Type,
        member: &Member,
        bitfield: &dyn Fn() -> BtfError,
    ) -> Result<u32, BtfError> {
        let bit_offset = if parent.kind_flag {
            if member.offset >> 24 != 0 {
                return Err(bitfield());
            }
            member.offset & 0x00ff_ffff
        } else {
            // Without kind_flag a bitfield is an int type whose width is
            // not its storage size (or that starts at a bit offset).
            let target = self.ty(self.resolve(member.type_id)?)?;
            if let TypeData::Int(encoding) = target.data {
                let bits = encoding & 0xff;
                let offset = (encoding >> 16) & 0xff;
                if offset != 0 || u64::from(bits) != u64::from(target.size_or_type) * 8 {
                    return Err(bitfield());
                }
            }
            member.offset
        };
        if bit_offset % 8 != 0 {
            return Err(bitfield());
        }
        Ok(bit_offset / 8)
    }

    /// Finds the member `name` of composite type `id`, directly or inside
    /// anonymous struct/union members (whose offsets are added).
    fn find_member(
        &self,
        id: u32,
        name: &[u8],
        depth: usize,
        bitfield: &dyn Fn() -> BtfError,
    ) -> Result<Option<Found>, BtfError> {
        if depth >= MAX_DEPTH {
            return Err(malformed(format!(
                "anonymous members nested deeper than {MAX_DEPTH} in type {id} (a cycle?)"
            )));
        }
        let parent = self.ty(id)?;
        for member in self.members_of(parent) {
            let member_name = self.name(member.name_off);
            if member_name == name {
                let offset = self.member_byte_offset(parent, member, bitfield)?;
                return Ok(Some(Found {
                    offset,
                    type_id: member.type_id,
                }));
            }
            if !member_name.is_empty() {
                continue;
            }
            // Unnamed: an anonymous struct/union to search, or padding.
            let inner = self.resolve(member.type_id)?;
            if !matches!(self.ty(inner)?.kind, BtfKind::Struct | BtfKind::Union) {
                continue;
            }
            if let Some(found) = self.find_member(inner, name, depth + 1, bitfield)? {
                let base = self.member_byte_offset(parent, member, bitfield)?;
                let offset = base.checked_add(found.offset).ok_or_else(|| {
                    malformed(format!("member offset overflows inside type {id}"))
                })?;
                return Ok(Some(Found { offset, ..found }));
            }
        }
        Ok(None)
    }

    /// Byte offset of a member path inside a struct (or union), following
    /// nested struct/union members, including anonymous ones: a member in
    /// an unnamed union is found by its own name.
    ///
    /// Segments are dot-separated member names; each segment after the
    /// first is looked up in the type of the previous member, through
    /// typedefs and qualifiers but never through a pointer: a pointer ends
    /// the path, and the caller reads it in a separate step.
    ///
    /// `member_offset("file", "f_path.dentry")` is the offset of
    /// `file.f_path` plus that of `path.dentry`.
    pub(crate) fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        self.lookup(struct_name, path).map(|found| found.offset)
    }

    /// [`Self::member_offset`], also returning the last member's type.
    fn lookup(&self, struct_name: &str, path: &str) -> Result<Found, BtfError> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(BtfError::InvalidPath {
                struct_name: struct_name.to_owned(),
                path: path.to_owned(),
            });
        }
        let mut container = self.find_composite(struct_name)?;
        let mut total: u32 = 0;
        let mut previous: Option<(&str, u32)> = None;
        let mut consumed = 0;
        for segment in path.split('.') {
            let prefix_end = consumed + segment.len();
            let prefix = &path[..prefix_end];
            consumed = prefix_end + 1;
            if let Some((previous_name, previous_type)) = previous {
                let resolved = self.resolve(previous_type)?;
                let ty = self.ty(resolved)?;
                if !matches!(ty.kind, BtfKind::Struct | BtfKind::Union) {
                    return Err(BtfError::NotComposite {
                        struct_name: struct_name.to_owned(),
                        path: path.to_owned(),
                        member: previous_name.to_owned(),
                        // Kind 0 appears only as type 0, `void`.
                        kind: if resolved == 0 {
                            "void"
                        } else {
                            kind_description(ty.kind)
                        },
                    });
                }
                container = resolved;
            }
            let bitfield = || BtfError::Bitfield {
                struct_name: struct_name.to_owned(),
                path: prefix.to_owned(),
            };
            let found = self
                .find_member(container, segment.as_bytes(), 0, &bitfield)?
                .ok_or_else(|| BtfError::MemberNotFound {
                    struct_name: struct_name.to_owned(),
                    path: path.to_owned(),
                    container: self
                        .ty(container)
                        .map(|ty| self.display_name(ty))
                        .unwrap_or_default(),
                    member: segment.to_owned(),
                })?;
            total = total.checked_add(found.offset).ok_or_else(|| {
                malformed(format!("offset of `{struct_name}.{prefix}` overflows"))
            })?;
            previous = Some((segment, found.type_id));
        }
        let type_id = previous.map_or(0, |(_, type_id)| type_id);
        Ok(Found {
            offset: total,
            type_id,
        })
    }

    // Only the tests read sizes: they check the reader against known layouts.
    #[cfg(test)]
    /// Size in bytes of the struct (or union) named `struct_name`.
    pub(crate) fn struct_size(&self, struct_name: &str) -> Result<u32, BtfError> {
        let id = self.find_composite(struct_name)?;
        Ok(self.ty(id)?.size_or_type)
    }
}

fn kind_description(kind: BtfKind) -> &'static str {
    match kind {
        BtfKind::Int => "an integer",
        BtfKind::Ptr => "a pointer",
        BtfKind::Array => "an array",
        BtfKind::Enum | BtfKind::Enum64 => "an enum",
        BtfKind::Fwd => "a forward declaration",
        BtfKind::Func | BtfKind::FuncProto => "a function",
        BtfKind::Float => "a float",
        _ => "another kind of type",
    }
}

/// The offsets the exec programs need, resolved against `btf`.
pub(crate) fn exec_offsets(btf: &KernelBtf) -> Result<ExecOffsets, BtfError> {
    Ok(ExecOffsets {
        binprm_file: btf.member_offset("linux_binprm", "file")?,
        binprm_filename: btf.member_offset("linux_binprm", "filename")?,
        file_inode: btf.member_offset("file", "f_inode")?,
        file_dentry: btf.member_offset("file", "f_path.dentry")?,
        inode_ino: btf.member_offset("inode", "i_ino")?,
        inode_sb: btf.member_offset("inode", "i_sb")?,
        sb_dev: btf.member_offset("super_block", "s_dev")?,
        dentry_name: btf.member_offset("dentry", "d_name.name")?,
        dentry_parent: btf.member_offset("dentry", "d_parent")?,
        dentry_inode: btf.member_offset("dentry", "d_inode")?,
        task_real_parent: btf.member_offset("task_struct", "real_parent")?,
        task_tgid: btf.member_offset("task_struct", "tgid")?,
        inode_nlink: btf.member_offset("inode", "i_nlink")?,
        task_files: btf.member_offset("task_struct", "files")?,
        files_fdt: btf.member_offset("files_struct", "fdt")?,
        fdtable_fd: btf.member_offset("fdtable", "fd")?,
        fdtable_max_fds: btf.member_offset("fdtable", "max_fds")?,
        task_pid: btf.member_offset("task_struct", "pid")?,
        task_comm: btf.member_offset("task_struct", "comm")?,
        inode_uid: btf.member_offset("inode", "i_uid")?,
        inode_mode: btf.member_offset("inode", "i_mode")?,
        sb_magic: btf.member_offset("super_block", "s_magic")?,
        sb_user_ns: btf.member_offset("super_block", "s_user_ns")?,
        user_ns_level: btf.member_offset("user_namespace", "level")?,
        task_works: btf.member_offset("task_struct", "task_works")?,
        callback_next: btf.member_offset("callback_head", "next")?,
        callback_func: btf.member_offset("callback_head", "func")?,
        file_put_work: file_put_work(btf)?,
        file_flags: btf.member_offset("file", "f_flags")?,
        binprm_interp: btf.member_offset("linux_binprm", "interp")?,
        vma_file: btf.member_offset("vm_area_struct", "vm_file")?,
        _reserved: 0,
        // Not in BTF: the daemon fills it in from kallsyms.
        put_work_function: 0,
    })
}

/// Where `struct file` keeps the work that drops its last reference: the
/// member has had three names, each in a union at the same place.
fn file_put_work(btf: &KernelBtf) -> Result<u32, BtfError> {
    btf.member_offset("file", "f_task_work")
        .or_else(|_| btf.member_offset("file", "f_rcuhead"))
        .or_else(|_| btf.member_offset("file", "f_u"))
}

/// The offsets the guard programs need, resolved against `btf`.
pub(crate) fn guard_offsets(btf: &KernelBtf) -> Result<GuardOffsets, BtfError> {
    Ok(GuardOffsets {
        map_id: btf.member_offset("bpf_map", "id")?,
        prog_aux: btf.member_offset("bpf_prog", "aux")?,
        prog_aux_id: btf.member_offset("bpf_prog_aux", "id")?,
        inode_ino: btf.member_offset("inode", "i_ino")?,
        inode_sb: btf.member_offset("inode", "i_sb")?,
        sb_dev: btf.member_offset("super_block", "s_dev")?,
        mount_sb: btf.member_offset("vfsmount", "mnt_sb")?,
        task_tgid: btf.member_offset("task_struct", "tgid")?,
        task_mm: btf.member_offset("task_struct", "mm")?,
        mm_exe_file: btf.member_offset("mm_struct", "exe_file")?,
        file_inode: btf.member_offset("file", "f_inode")?,
        task_real_parent: btf.member_offset("task_struct", "real_parent")?,
    })
}

#[cfg(test)]
mod tests;
