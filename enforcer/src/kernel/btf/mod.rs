//! Kernel struct member offsets from the running kernel's BTF.
//!
//! Rust eBPF has no CO-RE relocations, so the kernel programs cannot ask the
//! loader to patch field accesses. Instead the daemon reads the offsets it
//! needs from `/sys/kernel/btf/vmlinux` at start and hands them to the
//! programs as globals ([`exec_offsets`]).
//!
//! This is a deliberately small BTF reader (the format is described in the
//! kernel's `Documentation/bpf/btf.rst`): it parses the header, the type
//! section into a table indexed by type id and looks names up in the string
//! section. Only what member lookups need is kept. Every read is bounds
//! checked; malformed input is a [`BtfError`], never a panic.

use std::{fmt, io, path::Path, path::PathBuf};

use enforcer_common::{exec::ExecOffsets, guard::GuardOffsets};

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

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

fn malformed(message: impl Into<String>) -> BtfError {
    BtfError::Malformed(message.into())
}

// Kinds, from include/uapi/linux/btf.h.
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

const BTF_VERSION: u8 = 1;
/// magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
const HEADER_LEN: usize = 24;
/// Newer headers add layout_off and layout_len: the size of every kind's
/// trailing data, so readers can skip kinds they do not know.
const HEADER_WITH_LAYOUT_LEN: usize = 32;
const TYPE_HEADER_LEN: usize = 12;
const MEMBER_LEN: usize = 12;
/// Bounds the modifier chains and anonymous-member nesting followed, so a
/// cyclic (malformed) file cannot recurse without end.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Endian {
    Little,
    Big,
}

/// Bounds-checked reads of one byte slice.
#[derive(Clone, Copy)]
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    fn u32_at(&self, offset: usize, what: &str) -> Result<u32, BtfError> {
        let end = offset.checked_add(4);
        let raw = end
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or_else(|| malformed(format!("{what} at byte {offset} is past the end")))?;
        let raw: [u8; 4] = raw.try_into().map_err(|_| malformed("short read"))?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }
}

/// One type of the type section. Only struct/union members and int
/// encodings are kept; other trailing data is skipped.
#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u8,
    kind_flag: bool,
    /// `size` for int, enum, struct, union, datasec; a type id for ptr,
    /// typedef, modifiers, func, var, decl/type tags.
    size_or_type: u32,
    data: TypeData,
}

#[derive(Clone, Debug)]
enum TypeData {
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
struct Member {
    name_off: u32,
    type_id: u32,
    /// Bit offset, or with the parent's kind_flag
    /// `bitfield_size << 24 | bit_offset`.
    offset: u32,
}

/// A member found by name: where it starts and what it is.
#[derive(Clone, Copy, Debug)]
struct Found {
    offset: u32,
    type_id: u32,
}

/// The running kernel's types, parsed from BTF.
pub struct KernelBtf {
    /// Indexed by type id; id 0 is `void`.
    types: Vec<Type>,
    members: Vec<Member>,
    /// The string section; starts and ends with a NUL.
    strings: Vec<u8>,
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

impl KernelBtf {
    /// Reads and parses the running kernel's BTF ([`VMLINUX_BTF_PATH`]).
    pub fn load() -> Result<Self, BtfError> {
        Self::load_from(Path::new(VMLINUX_BTF_PATH))
    }

    /// Reads and parses a raw BTF file (not an ELF object).
    pub fn load_from(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses raw BTF bytes in either byte order.
    pub fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
        if bytes.len() < HEADER_LEN {
            return Err(malformed(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let endian = match [bytes[0], bytes[1]] {
            [0x9f, 0xeb] => Endian::Little,
            [0xeb, 0x9f] => Endian::Big,
            magic => {
                return Err(malformed(format!(
                    "bad magic {:02x}{:02x}",
                    magic[0], magic[1]
                )));
            }
        };
        if bytes[2] != BTF_VERSION {
            return Err(malformed(format!("unsupported version {}", bytes[2])));
        }
        let reader = Reader { bytes, endian };
        let hdr_len = reader.u32_at(4, "hdr_len")? as usize;
        if hdr_len < HEADER_LEN || hdr_len > bytes.len() {
            return Err(malformed(format!(
                "header length {hdr_len} outside {HEADER_LEN}..={}",
                bytes.len()
            )));
        }
        // Section offsets are relative to the end of the header.
        let section = |off_at: usize, name: &str| -> Result<&[u8], BtfError> {
            let off = reader.u32_at(off_at, name)? as usize;
            let len = reader.u32_at(off_at + 4, name)? as usize;
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|start| start.checked_add(len));
            match (start, end) {
                (Some(start), Some(end)) if end <= bytes.len() => Ok(&bytes[start..end]),
                _ => Err(malformed(format!(
                    "{name} section (offset {off}, length {len}) is outside the {}-byte file",
                    bytes.len()
                ))),
            }
        };
        let type_section = section(8, "type")?;
        let strings = section(16, "string")?;
        let layout = if hdr_len >= HEADER_WITH_LAYOUT_LEN {
            section(24, "layout")?
        } else {
            &[]
        };
        if strings.first() != Some(&0) || strings.last() != Some(&0) {
            return Err(malformed(
                "the string section must start and end with a NUL byte",
            ));
        }

        let mut btf = KernelBtf {
            types: vec![Type {
                name_off: 0,
                kind: 0,
                kind_flag: false,
                size_or_type: 0,
                data: TypeData::None,
            }],
            members: Vec::new(),
            strings: strings.to_vec(),
        };
        btf.parse_types(
            Reader {
                bytes: type_section,
                endian,
            },
            Reader {
                bytes: layout,
                endian,
            },
        )?;
        btf.check_references()?;
        Ok(btf)
    }

    fn parse_types(&mut self, section: Reader<'_>, layout: Reader<'_>) -> Result<(), BtfError> {
        let len = section.bytes.len();
        let mut pos = 0;
        while pos < len {
            let id = self.types.len();
            if len - pos < TYPE_HEADER_LEN {
                return Err(malformed(format!(
                    "type section ends inside the header of type {id}"
                )));
            }
            let name_off = section.u32_at(pos, "name_off")?;
            let info = section.u32_at(pos + 4, "info")?;
            let size_or_type = section.u32_at(pos + 8, "size/type")?;
            pos += TYPE_HEADER_LEN;
            // vlen is bits 0-15, extended to 0-23 by newer kernels; kind is
            // bits 24-28, extended to 24-30. The extension bits were
            // required to be zero before, so the wide masks read both.
            let vlen = (info & 0x00ff_ffff) as usize;
            let kind = ((info >> 24) & 0x7f) as u8;
            let kind_flag = info >> 31 == 1;
            self.check_name(name_off, id)?;

            let trailing = match kind {
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => Some(0),
                KIND_INT | KIND_VAR | KIND_DECL_TAG => Some(4),
                KIND_ARRAY => Some(12),
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen.checked_mul(12),
                KIND_ENUM | KIND_FUNC_PROTO => vlen.checked_mul(8),
                0 => return Err(malformed(format!("type {id} has kind 0 (unknown)"))),
                _ => Some(Self::layout_size(layout, kind, vlen, id)?),
            };
            let trailing = trailing
                .filter(|&trailing| trailing <= len - pos)
                .ok_or_else(|| {
                    malformed(format!(
                        "type {id} (kind {kind}, vlen {vlen}) runs past the end of the type section"
                    ))
                })?;

            let data = match kind {
                KIND_INT => TypeData::Int(section.u32_at(pos, "int encoding")?),
                KIND_STRUCT | KIND_UNION => {
                    let first = self.members.len();
                    for index in 0..vlen {
                        let at = pos + index * MEMBER_LEN;
                        let member = Member {
                            name_off: section.u32_at(at, "member name_off")?,
                            type_id: section.u32_at(at + 4, "member type")?,
                            offset: section.u32_at(at + 8, "member offset")?,
                        };
                        self.check_name(member.name_off, id)?;
                        self.members.push(member);
                    }
                    TypeData::Members { first, count: vlen }
                }
                _ => TypeData::None,
            };
            self.types.push(Type {
                name_off,
                kind,
                kind_flag,
                size_or_type,
                data,
            });
            pos += trailing;
        }
        Ok(())
    }

    /// Trailing bytes of a kind this reader does not know, from the layout
    /// section newer encoders write.
    fn layout_size(
        layout: Reader<'_>,
        kind: u8,
        vlen: usize,
        id: usize,
    ) -> Result<usize, BtfError> {
        let entry = usize::from(kind) * 4;
        if entry + 4 > layout.bytes.len() {
            return Err(malformed(format!(
                "type {id} has unknown kind {kind} and no layout describes it"
            )));
        }
        let info_size = usize::from(layout.bytes[entry]);
        let element_size = usize::from(layout.bytes[entry + 1]);
        vlen.checked_mul(element_size)
            .and_then(|elements| elements.checked_add(info_size))
            .ok_or_else(|| malformed(format!("type {id}: size of kind {kind} overflows")))
    }

    fn check_name(&self, name_off: u32, id: usize) -> Result<(), BtfError> {
        if (name_off as usize) < self.strings.len() {
            Ok(())
        } else {
            Err(malformed(format!(
                "type {id} names string offset {name_off}, past the {}-byte string section",
                self.strings.len()
            )))
        }
    }

    /// Every type id a lookup may follow must exist.
    fn check_references(&self) -> Result<(), BtfError> {
        let count = self.types.len();
        for (id, ty) in self.types.iter().enumerate() {
            let follows_type = matches!(
                ty.kind,
                KIND_PTR
                    | KIND_TYPEDEF
                    | KIND_VOLATILE
                    | KIND_CONST
                    | KIND_RESTRICT
                    | KIND_TYPE_TAG
            );
            if follows_type && ty.size_or_type as usize >= count {
                return Err(malformed(format!(
                    "type {id} refers to type {}, but there are only {count}",
                    ty.size_or_type
                )));
            }
            for member in self.members_of(ty) {
                if member.type_id as usize >= count {
                    return Err(malformed(format!(
                        "a member of type {id} has type {}, but there are only {count}",
                        member.type_id
                    )));
                }
            }
        }
        Ok(())
    }

    fn ty(&self, id: u32) -> Result<&Type, BtfError> {
        self.types
            .get(id as usize)
            .ok_or_else(|| malformed(format!("no type with id {id}")))
    }

    /// The NUL-terminated string at `offset` (without the NUL).
    fn name(&self, offset: u32) -> &[u8] {
        let tail = self.strings.get(offset as usize..).unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    fn members_of(&self, ty: &Type) -> &[Member] {
        match ty.data {
            TypeData::Members { first, count } => self
                .members
                .get(first..first.saturating_add(count))
                .unwrap_or_default(),
            _ => &[],
        }
    }

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
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
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
            if matches!(ty.kind, KIND_STRUCT | KIND_UNION)
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
            if !matches!(self.ty(inner)?.kind, KIND_STRUCT | KIND_UNION) {
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
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
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
                if !matches!(ty.kind, KIND_STRUCT | KIND_UNION) {
                    return Err(BtfError::NotComposite {
                        struct_name: struct_name.to_owned(),
                        path: path.to_owned(),
                        member: previous_name.to_owned(),
                        kind: kind_description(ty.kind),
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

    /// Size in bytes of the struct (or union) named `struct_name`.
    pub fn struct_size(&self, struct_name: &str) -> Result<u32, BtfError> {
        let id = self.find_composite(struct_name)?;
        Ok(self.ty(id)?.size_or_type)
    }
}

fn kind_description(kind: u8) -> &'static str {
    match kind {
        0 => "void",
        KIND_INT => "an integer",
        KIND_PTR => "a pointer",
        KIND_ARRAY => "an array",
        KIND_ENUM | KIND_ENUM64 => "an enum",
        KIND_FWD => "a forward declaration",
        KIND_FUNC | KIND_FUNC_PROTO => "a function",
        KIND_FLOAT => "a float",
        _ => "another kind of type",
    }
}

/// The offsets the exec programs need, resolved against `btf`.
pub fn exec_offsets(btf: &KernelBtf) -> Result<ExecOffsets, BtfError> {
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
        _reserved: 0,
    })
}

/// The offsets the guard programs need, resolved against `btf`.
pub fn guard_offsets(btf: &KernelBtf) -> Result<GuardOffsets, BtfError> {
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
