//! The BTF wire format, as the kernel's `Documentation/bpf/btf.rst`
//! describes it: the header, then the type section read into a table
//! indexed by type id, with names looked up in the string section. Only
//! what member lookups need is kept. Every read is bounds checked;
//! malformed input is a [`BtfError`], never a panic.

use std::path::Path;

use aya_obj::btf::BtfKind::{self, *};

use super::model::{BtfError, KernelBtf, Member, Type, TypeData, VMLINUX_BTF_PATH, malformed};

const BTF_VERSION: u8 = 1;
/// magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
const HEADER_LEN: usize = 24;
/// Newer headers add layout_off and layout_len: the size of every kind's
/// trailing data, so readers can skip kinds they do not know.
const HEADER_WITH_LAYOUT_LEN: usize = 32;
const TYPE_HEADER_LEN: usize = 12;
const MEMBER_LEN: usize = 12;

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

impl KernelBtf {
    /// Reads and parses the running kernel's BTF ([`VMLINUX_BTF_PATH`]).
    pub(crate) fn load() -> Result<Self, BtfError> {
        Self::load_from(Path::new(VMLINUX_BTF_PATH))
    }

    /// Reads and parses a raw BTF file (not an ELF object).
    pub(crate) fn load_from(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses raw BTF bytes in either byte order.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
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
                kind: Unknown,
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

            // A kind this reader does not know is skipped by its layout and
            // kept as `Unknown`, which no lookup follows.
            let known = BtfKind::try_from(u32::from(kind)).ok();
            let trailing = match known {
                Some(
                    Ptr | Fwd | Typedef | Volatile | Const | Restrict | Func | Float | TypeTag,
                ) => Some(0),
                Some(Int | Var | DeclTag) => Some(4),
                Some(Array) => Some(12),
                Some(Struct | Union | DataSec | Enum64) => vlen.checked_mul(12),
                Some(Enum | FuncProto) => vlen.checked_mul(8),
                Some(Unknown) => return Err(malformed(format!("type {id} has kind 0 (unknown)"))),
                None => Some(Self::layout_size(layout, kind, vlen, id)?),
            };
            let trailing = trailing
                .filter(|&trailing| trailing <= len - pos)
                .ok_or_else(|| {
                    malformed(format!(
                        "type {id} (kind {kind}, vlen {vlen}) runs past the end of the type section"
                    ))
                })?;

            let kind = known.unwrap_or(Unknown);
            let data = match kind {
                Int => TypeData::Int(section.u32_at(pos, "int encoding")?),
                Struct | Union => {
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
                Ptr | Typedef | Volatile | Const | Restrict | TypeTag
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
    pub(super) fn ty(&self, id: u32) -> Result<&Type, BtfError> {
        self.types
            .get(id as usize)
            .ok_or_else(|| malformed(format!("no type with id {id}")))
    }

    /// The NUL-terminated string at `offset` (without the NUL).
    pub(super) fn name(&self, offset: u32) -> &[u8] {
        let tail = self.strings.get(offset as usize..).unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    pub(super) fn members_of(&self, ty: &Type) -> &[Member] {
        match ty.data {
            TypeData::Members { first, count } => self
                .members
                .get(first..first.saturating_add(count))
                .unwrap_or_default(),
            _ => &[],
        }
    }
}
