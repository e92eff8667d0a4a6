//! What the reader makes of the kernel's BTF, and what can go wrong.

use std::{fmt, io, path::PathBuf};

use aya_obj::btf::BtfKind;

/// Where the kernel exposes its own BTF.
pub(crate) const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("kernel BTF has no struct or union named `{0}`")]
    StructNotFound(String),
    #[error(
        "invalid member path `{path}` for `{struct_name}`: expected dot-separated member names"
    )]
    InvalidPath { struct_name: String, path: String },
    #[error("`{struct_name}.{path}`: `{container}` has no member `{member}`")]
    MemberNotFound {
        struct_name: String,
        path: String,
        /// The struct or union that was searched (`<anonymous>` if unnamed).
        container: String,
        member: String,
    },
    #[error("`{struct_name}.{path}` is a bitfield, which has no byte offset")]
    Bitfield { struct_name: String, path: String },
    #[error(
        "`{struct_name}.{path}`: `{member}` is {kind}, not a struct or union, so the path cannot \
         continue inside it (pointers are followed by the caller, one step at a time)"
    )]
    NotComposite {
        struct_name: String,
        path: String,
        member: String,
        kind: &'static str,
    },
}

pub(super) fn malformed(message: impl Into<String>) -> BtfError {
    BtfError::Malformed(message.into())
}

/// The running kernel's types, parsed from BTF.
pub(crate) struct KernelBtf {
    /// Indexed by type id; id 0 is `void`.
    pub(super) types: Vec<Type>,
    pub(super) members: Vec<Member>,
    /// The string section; starts and ends with a NUL.
    pub(super) strings: Vec<u8>,
}

impl fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelBtf")
            .field("types", &self.types.len())
            .field("members", &self.members.len())
            .field("string_bytes", &self.strings.len())
            .finish()
    }
}

/// One type of the type section. Only struct/union members and int
/// encodings are kept; other trailing data is skipped.
#[derive(Clone, Debug)]
pub(super) struct Type {
    pub(super) name_off: u32,
    pub(super) kind: BtfKind,
    pub(super) kind_flag: bool,
    /// `size` for int, enum, struct, union, datasec; a type id for ptr,
    /// typedef, modifiers, func, var, decl/type tags.
    pub(super) size_or_type: u32,
    pub(super) data: TypeData,
}

#[derive(Clone, Debug)]
pub(super) enum TypeData {
    None,
    /// `BTF_INT_ENCODING << 24 | BTF_INT_OFFSET << 16 | BTF_INT_BITS`.
    Int(u32),
    /// `members[first..first + count]`.
    Members {
        first: usize,
        count: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Member {
    pub(super) name_off: u32,
    pub(super) type_id: u32,
    /// Bit offset, or with the parent's kind_flag
    /// `bitfield_size << 24 | bit_offset`.
    pub(super) offset: u32,
}
