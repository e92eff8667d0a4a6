use super::{model::VMLINUX_BTF_PATH, *};

/// Builds small BTF blobs. Types get ids in the order they are added,
/// starting at 1.
struct Builder {
    types: Vec<u32>,
    strings: Vec<u8>,
    next_id: u32,
    /// `(kind, info_sz, elem_sz)` entries of a layout section; a 32-byte
    /// header is written when this is not empty.
    layout: Vec<(u8, u8, u8)>,
}

impl Builder {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            layout: Vec::new(),
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        offset
    }

    fn header(
        &mut self,
        name: &str,
        kind: u8,
        kind_flag: bool,
        vlen: u32,
        size_or_type: u32,
    ) -> u32 {
        let name = self.string(name);
        let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen;
        self.types.extend([name, info, size_or_type]);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        let id = self.header(name, BtfKind::Int as u8, false, 0, size);
        self.types.push(bits);
        id
    }

    fn reference(&mut self, kind: u8, name: &str, target: u32) -> u32 {
        self.header(name, kind, false, 0, target)
    }

    /// Members as `(name, type, bit offset)`.
    fn composite(&mut self, kind: u8, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.header(name, kind, false, members.len() as u32, size);
        for &(member, type_id, bit_offset) in members {
            let member = self.string(member);
            self.types.extend([member, type_id, bit_offset]);
        }
        id
    }

    fn structure(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(BtfKind::Struct as u8, name, size, members)
    }

    fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(BtfKind::Union as u8, name, size, members)
    }

    /// A kind_flag struct; members as `(name, type, bitfield size, bit
    /// offset)`.
    fn structure_with_bitfields(
        &mut self,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let id = self.header(
            name,
            BtfKind::Struct as u8,
            true,
            members.len() as u32,
            size,
        );
        for &(member, type_id, bits, bit_offset) in members {
            let member = self.string(member);
            self.types
                .extend([member, type_id, (bits << 24) | bit_offset]);
        }
        id
    }

    fn build_with(&self, big_endian: bool) -> Vec<u8> {
        let word = |value: u32| {
            if big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            }
        };
        let hdr_len: u32 = if self.layout.is_empty() { 24 } else { 32 };
        let type_len = self.types.len() as u32 * 4;
        let str_len = self.strings.len() as u32;
        let mut out = Vec::new();
        if big_endian {
            out.extend([0xeb, 0x9f]);
        } else {
            out.extend([0x9f, 0xeb]);
        }
        out.extend([1, 0]);
        for value in [hdr_len, 0, type_len, type_len, str_len] {
            out.extend(word(value));
        }
        let mut layout = Vec::new();
        if !self.layout.is_empty() {
            let kinds = self
                .layout
                .iter()
                .map(|&(kind, _, _)| kind)
                .max()
                .unwrap_or(0);
            layout = vec![0u8; (usize::from(kinds) + 1) * 4];
            for &(kind, info_sz, elem_sz) in &self.layout {
                let at = usize::from(kind) * 4;
                layout[at] = info_sz;
                layout[at + 1] = elem_sz;
            }
            out.extend(word(type_len + str_len));
            out.extend(word(layout.len() as u32));
        }
        for &value in &self.types {
            out.extend(word(value));
        }
        out.extend(&self.strings);
        out.extend(layout);
        out
    }

    fn build(&self) -> Vec<u8> {
        self.build_with(false)
    }
}

/// A miniature of the kernel structs the exec program reads, with the
/// shapes that matter: anonymous unions and structs, typedefs and
/// qualifiers around a nested struct, pointers, bitfields, a forward
/// declaration and an empty struct sharing a name with a full one.
fn sample() -> Builder {
    let mut b = Builder::new();
    let u32_ = b.int("unsigned int", 4, 32);
    let u64_ = b.int("long long unsigned int", 8, 64);
    let uchar = b.int("unsigned char", 1, 8);
    let const_uchar = b.reference(BtfKind::Const as u8, "", uchar);
    let name_ptr = b.reference(BtfKind::Ptr as u8, "", const_uchar);
    // A forward declaration and an empty struct come before the real
    // `dentry`; both are skipped.
    let _fwd = b.reference(BtfKind::Fwd as u8, "dentry", 0);
    let _empty = b.structure("dentry", 0, &[]);

    // struct qstr { union { struct { u32 hash; u32 len; }; u64 hash_len; };
    //               const unsigned char *name; };
    let hash_len = b.structure("", 8, &[("hash", u32_, 0), ("len", u32_, 32)]);
    let hash_union = b.union("", 8, &[("", hash_len, 0), ("hash_len", u64_, 0)]);
    let qstr = b.structure("qstr", 16, &[("", hash_union, 0), ("name", name_ptr, 64)]);

    // struct dentry { unsigned int d_flags; struct qstr d_name;
    //                 struct dentry *d_parent; struct inode *d_inode; };
    // `d_parent` points at id 12, the dentry itself.
    let dentry_ptr = b.reference(BtfKind::Ptr as u8, "", 12);
    let dentry = b.structure(
        "dentry",
        40,
        &[
            ("d_flags", u32_, 0),
            ("d_name", qstr, 64),
            ("d_parent", dentry_ptr, 192),
            ("d_inode", u64_, 256),
        ],
    );
    assert_eq!(dentry, 12);

    // typedef struct path path_t; struct file { u64 f_mode; (anonymous
    // union with the path) const volatile path_t f_path; ... }.
    let path = b.structure("path", 16, &[("mnt", u64_, 0), ("dentry", dentry_ptr, 64)]);
    let path_t = b.reference(BtfKind::Typedef as u8, "path_t", path);
    let volatile_path = b.reference(BtfKind::Volatile as u8, "", path_t);
    let const_path = b.reference(BtfKind::Const as u8, "", volatile_path);
    let tagged_path = b.reference(BtfKind::TypeTag as u8, "rcu", const_path);
    let f_union = b.union("", 16, &[("f_path", tagged_path, 0), ("f_raw", u64_, 0)]);
    let inode_ptr = b.reference(BtfKind::Ptr as u8, "", u64_);
    b.structure(
        "file",
        48,
        &[
            ("f_mode", u64_, 0),
            ("", f_union, 128),
            ("f_inode", inode_ptr, 256),
        ],
    );

    // Bitfields, both encodings.
    b.structure_with_bitfields(
        "flags_kf",
        16,
        &[
            ("bits", u32_, 3, 0),
            ("more", u32_, 5, 3),
            ("whole", u32_, 0, 32),
            ("wide", u64_, 0, 64),
        ],
    );
    let three_bits = b.int("unsigned int", 4, 3);
    b.structure(
        "flags_old",
        8,
        &[("bits", three_bits, 0), ("whole", u32_, 32)],
    );
    b
}

fn sample_btf() -> KernelBtf {
    KernelBtf::parse(&sample().build()).expect("sample BTF parses")
}

#[test]
fn finds_plain_and_nested_members() {
    let btf = sample_btf();
    assert_eq!(btf.member_offset("dentry", "d_flags").unwrap(), 0);
    assert_eq!(btf.member_offset("dentry", "d_name").unwrap(), 8);
    assert_eq!(btf.member_offset("dentry", "d_parent").unwrap(), 24);
    assert_eq!(btf.member_offset("dentry", "d_inode").unwrap(), 32);
    assert_eq!(btf.member_offset("dentry", "d_name.name").unwrap(), 16);
    assert_eq!(btf.struct_size("dentry").unwrap(), 40);
    assert_eq!(btf.struct_size("qstr").unwrap(), 16);
}

#[test]
fn finds_members_inside_anonymous_unions_and_structs() {
    let btf = sample_btf();
    assert_eq!(btf.member_offset("qstr", "hash_len").unwrap(), 0);
    assert_eq!(btf.member_offset("qstr", "hash").unwrap(), 0);
    assert_eq!(btf.member_offset("qstr", "len").unwrap(), 4);
    assert_eq!(btf.member_offset("qstr", "name").unwrap(), 8);
    assert_eq!(btf.member_offset("dentry", "d_name.len").unwrap(), 12);
    // `f_path` sits in an anonymous union at byte 16 of `file`.
    assert_eq!(btf.member_offset("file", "f_path").unwrap(), 16);
    assert_eq!(btf.member_offset("file", "f_raw").unwrap(), 16);
    assert_eq!(btf.member_offset("file", "f_inode").unwrap(), 32);
}

#[test]
fn follows_typedefs_and_qualifiers_but_not_pointers() {
    let btf = sample_btf();
    // typedef + volatile + const + type tag around `struct path`.
    assert_eq!(btf.member_offset("file", "f_path.dentry").unwrap(), 24);
    assert_eq!(btf.member_offset("file", "f_path.mnt").unwrap(), 16);

    let err = btf
        .member_offset("file", "f_path.dentry.d_name")
        .unwrap_err();
    match &err {
        BtfError::NotComposite { member, kind, .. } => {
            assert_eq!(member, "dentry");
            assert_eq!(*kind, "a pointer");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("pointer"), "{err}");

    let err = btf.member_offset("file", "f_mode.x").unwrap_err();
    assert!(
        matches!(
            err,
            BtfError::NotComposite {
                kind: "an integer",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bitfields_are_errors() {
    let btf = sample_btf();
    for (name, path) in [
        ("flags_kf", "bits"),
        ("flags_kf", "more"),
        ("flags_old", "bits"),
    ] {
        let err = btf.member_offset(name, path).unwrap_err();
        match &err {
            BtfError::Bitfield {
                struct_name,
                path: got,
            } => {
                assert_eq!(struct_name, name);
                assert_eq!(got, path);
            }
            other => panic!("{name}.{path}: unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("bitfield"), "{err}");
    }
    // Ordinary members next to bitfields are fine.
    assert_eq!(btf.member_offset("flags_kf", "whole").unwrap(), 4);
    assert_eq!(btf.member_offset("flags_kf", "wide").unwrap(), 8);
    assert_eq!(btf.member_offset("flags_old", "whole").unwrap(), 4);
}

#[test]
fn missing_names_are_reported() {
    let btf = sample_btf();
    let err = btf.member_offset("dentry", "d_nope").unwrap_err();
    match &err {
        BtfError::MemberNotFound {
            struct_name,
            container,
            member,
            ..
        } => {
            assert_eq!(struct_name, "dentry");
            assert_eq!(container, "dentry");
            assert_eq!(member, "d_nope");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("d_nope"), "{err}");

    // A miss in a nested struct names that struct.
    let err = btf.member_offset("file", "f_path.nope").unwrap_err();
    assert!(
        matches!(&err, BtfError::MemberNotFound { container, member, .. } if container == "path" && member == "nope"),
        "{err:?}"
    );

    let err = btf.member_offset("no_such_struct", "x").unwrap_err();
    assert!(
        matches!(&err, BtfError::StructNotFound(name) if name == "no_such_struct"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_struct"), "{err}");

    // Typedef names are not struct names.
    assert!(matches!(
        btf.member_offset("path_t", "mnt"),
        Err(BtfError::StructNotFound(_))
    ));

    for path in ["", ".", "d_name.", ".d_name", "d_name..name"] {
        assert!(
            matches!(
                btf.member_offset("dentry", path),
                Err(BtfError::InvalidPath { .. })
            ),
            "{path:?}"
        );
    }
}

#[test]
fn skips_forward_declarations_and_empty_duplicates() {
    let btf = sample_btf();
    // The FWD and the empty `dentry` come first; the full one is used.
    assert_eq!(btf.struct_size("dentry").unwrap(), 40);

    // With only an empty struct of that name, the empty one is found and
    // has no members.
    let mut b = Builder::new();
    b.reference(BtfKind::Fwd as u8, "lonely", 0);
    b.structure("lonely", 0, &[]);
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert_eq!(btf.struct_size("lonely").unwrap(), 0);
    assert!(matches!(
        btf.member_offset("lonely", "x"),
        Err(BtfError::MemberNotFound { .. })
    ));

    // A FWD alone is not a struct.
    let mut b = Builder::new();
    b.reference(BtfKind::Fwd as u8, "only_fwd", 0);
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert!(matches!(
        btf.struct_size("only_fwd"),
        Err(BtfError::StructNotFound(_))
    ));
}

#[test]
fn big_endian_parses_the_same() {
    let btf = KernelBtf::parse(&sample().build_with(true)).unwrap();
    assert_eq!(btf.member_offset("file", "f_path.dentry").unwrap(), 24);
    assert_eq!(btf.member_offset("dentry", "d_name.len").unwrap(), 12);
    assert!(matches!(
        btf.member_offset("flags_kf", "bits"),
        Err(BtfError::Bitfield { .. })
    ));
}

#[test]
fn every_known_kind_is_skipped_correctly() {
    let mut b = Builder::new();
    let int = b.int("int", 4, 32);
    // ARRAY: elem type, index type, nelems.
    b.header("", BtfKind::Array as u8, false, 0, 0);
    b.types.extend([int, int, 4]);
    // ENUM with two values.
    b.header("e", BtfKind::Enum as u8, false, 2, 4);
    let (a, c) = (b.string("A"), b.string("C"));
    b.types.extend([a, 0, c, 1]);
    // FUNC_PROTO with one parameter, FUNC.
    let proto = b.header("", BtfKind::FuncProto as u8, false, 1, int);
    b.types.extend([0, int]);
    b.header("f", BtfKind::Func as u8, false, 0, proto);
    // VAR, DATASEC with one variable.
    let var = b.header("v", BtfKind::Var as u8, false, 0, int);
    b.types.push(1);
    b.header(".data", BtfKind::DataSec as u8, false, 1, 4);
    b.types.extend([var, 0, 4]);
    b.header("float", BtfKind::Float as u8, false, 0, 4);
    b.header("tag", BtfKind::DeclTag as u8, false, 0, int);
    b.types.push(u32::MAX);
    b.header("e64", BtfKind::Enum64 as u8, false, 1, 8);
    b.types.extend([a, 1, 0]);
    b.reference(BtfKind::Restrict as u8, "", int);
    b.structure("after", 8, &[("x", int, 32)]);
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert_eq!(btf.member_offset("after", "x").unwrap(), 4);
}

#[test]
fn unknown_kinds_need_a_layout() {
    let mut b = sample();
    // Kind 25 with 4 bytes of info and 8 bytes per element, vlen 2.
    b.header("future", 25, false, 2, 0);
    b.types.extend([0; 5]);
    b.structure("after_future", 8, &[("x", 1, 32)]);
    assert!(matches!(
        KernelBtf::parse(&b.build()),
        Err(BtfError::Malformed(_))
    ));

    b.layout = vec![(25, 4, 8)];
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert_eq!(btf.member_offset("after_future", "x").unwrap(), 4);
    assert_eq!(btf.member_offset("file", "f_path.dentry").unwrap(), 24);
}

fn assert_malformed(bytes: &[u8], what: &str) {
    match KernelBtf::parse(bytes) {
        Err(BtfError::Malformed(message)) => assert!(!message.is_empty()),
        other => panic!("{what}: expected Malformed, got {other:?}"),
    }
}

/// Byte offset of the type section in a 24-byte-header blob.
const TYPES_AT: usize = 24;

#[test]
fn malformed_headers_are_errors() {
    let good = sample().build();
    assert_malformed(&[], "empty");
    assert_malformed(&good[..23], "short header");

    let mut bad = good.clone();
    bad[0] = 0;
    assert_malformed(&bad, "bad magic");

    let mut bad = good.clone();
    bad[2] = 2;
    assert_malformed(&bad, "bad version");

    for (at, value, what) in [
        (4, 8u32, "hdr_len below 24"),
        (4, u32::MAX, "hdr_len past the end"),
        (8, u32::MAX, "type_off overflow"),
        (12, u32::MAX, "type_len past the end"),
        (16, u32::MAX - 2, "str_off overflow"),
        (20, 1 << 20, "str_len past the end"),
    ] {
        let mut bad = good.clone();
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        assert_malformed(&bad, what);
    }
}

#[test]
fn malformed_sections_are_errors() {
    let b = sample();
    let good = b.build();
    let type_len = b.types.len() * 4;
    let strings_at = TYPES_AT + type_len;

    // String section not starting or not ending with NUL.
    let mut bad = good.clone();
    bad[strings_at] = b'x';
    assert_malformed(&bad, "string section start");
    let mut bad = good.clone();
    *bad.last_mut().unwrap() = b'x';
    assert_malformed(&bad, "string section end");

    // Type section cut in the middle of a type: shrink type_len by 4.
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&(type_len as u32 - 4).to_le_bytes());
    assert_malformed(&bad, "type section cut short");

    // A name offset past the string section.
    let mut bad = good.clone();
    bad[TYPES_AT..TYPES_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_malformed(&bad, "name offset");

    // Kind 0, and an unknown kind without a layout.
    for kind in [0u32, 31, 127] {
        let mut bad = good.clone();
        let info = kind << 24;
        bad[TYPES_AT + 4..TYPES_AT + 8].copy_from_slice(&info.to_le_bytes());
        assert_malformed(&bad, "bad kind");
    }

    // A huge vlen on the first struct.
    let mut b = Builder::new();
    b.structure("s", 4, &[("x", 0, 0)]);
    let mut bad = b.build();
    let info = (u32::from(BtfKind::Struct as u8) << 24) | 0x00ff_ffff;
    bad[TYPES_AT + 4..TYPES_AT + 8].copy_from_slice(&info.to_le_bytes());
    assert_malformed(&bad, "huge vlen");
}

#[test]
fn dangling_type_ids_are_errors() {
    let mut b = Builder::new();
    b.structure("s", 8, &[("x", 99, 0)]);
    assert_malformed(&b.build(), "member type past the table");

    let mut b = Builder::new();
    b.reference(BtfKind::Typedef as u8, "t", 42);
    assert_malformed(&b.build(), "typedef target past the table");
}

#[test]
fn cycles_are_errors_not_hangs() {
    // typedef t1 -> t2 -> t1, used as the type of a nested path.
    let mut b = Builder::new();
    b.reference(BtfKind::Typedef as u8, "t1", 2);
    b.reference(BtfKind::Typedef as u8, "t2", 1);
    b.structure("s", 8, &[("x", 1, 0)]);
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert!(matches!(
        btf.member_offset("s", "x.y"),
        Err(BtfError::Malformed(_))
    ));

    // A struct whose anonymous member is the struct itself.
    let mut b = Builder::new();
    b.structure("loop", 8, &[("", 1, 0)]);
    let btf = KernelBtf::parse(&b.build()).unwrap();
    assert!(matches!(
        btf.member_offset("loop", "x"),
        Err(BtfError::Malformed(_))
    ));
}

/// Parses `bytes` and, if that works, runs lookups; neither may panic.
fn exercise(bytes: &[u8]) {
    if let Ok(btf) = KernelBtf::parse(bytes) {
        for (name, path) in [
            ("file", "f_path.dentry"),
            ("dentry", "d_name.name"),
            ("qstr", "len"),
            ("flags_kf", "whole"),
            ("flags_old", "bits"),
        ] {
            let _ = btf.member_offset(name, path);
            let _ = btf.struct_size(name);
        }
        let _ = exec_offsets(&btf);
    }
}

#[test]
fn truncated_and_corrupted_input_never_panics() {
    for big_endian in [false, true] {
        let good = sample().build_with(big_endian);
        for len in 0..good.len() {
            exercise(&good[..len]);
        }
        for at in 0..good.len() {
            for value in [0x00, 0xff, 0x80, 0x01, good[at] ^ 0x10] {
                let mut bad = good.clone();
                bad[at] = value;
                exercise(&bad);
            }
        }
    }
}

/// The running kernel's BTF, if this machine exposes it.
fn vmlinux() -> Option<KernelBtf> {
    match KernelBtf::load() {
        Ok(btf) => Some(btf),
        Err(BtfError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{VMLINUX_BTF_PATH} not present; skipping");
            None
        }
        Err(err) => panic!("loading {VMLINUX_BTF_PATH}: {err}"),
    }
}

/// Kind of the (typedef-resolved) type of a member path's last member.
fn member_kind(btf: &KernelBtf, struct_name: &str, path: &str) -> (BtfKind, u32) {
    let found = btf.lookup(struct_name, path).unwrap();
    let ty = btf.ty(btf.resolve(found.type_id).unwrap()).unwrap();
    (ty.kind, ty.size_or_type)
}

#[test]
fn resolves_exec_offsets_from_the_running_kernel() {
    let Some(btf) = vmlinux() else { return };
    let offsets = exec_offsets(&btf).unwrap();
    eprintln!("{offsets:#?}");

    let pointer_size = btf.struct_size("path").unwrap() / 2;
    assert_eq!(
        pointer_size as usize,
        size_of::<usize>(),
        "struct path is two pointers"
    );

    // Every offset lies inside its struct, and leaves room for the member.
    let fields: [(&str, &str, u32, u32); 12] = [
        ("linux_binprm", "file", offsets.binprm_file, pointer_size),
        (
            "linux_binprm",
            "filename",
            offsets.binprm_filename,
            pointer_size,
        ),
        ("file", "f_inode", offsets.file_inode, pointer_size),
        ("file", "f_path.dentry", offsets.file_dentry, pointer_size),
        ("inode", "i_ino", offsets.inode_ino, 8),
        ("inode", "i_sb", offsets.inode_sb, pointer_size),
        ("super_block", "s_dev", offsets.sb_dev, 4),
        ("dentry", "d_name.name", offsets.dentry_name, pointer_size),
        ("dentry", "d_parent", offsets.dentry_parent, pointer_size),
        ("dentry", "d_inode", offsets.dentry_inode, pointer_size),
        (
            "task_struct",
            "real_parent",
            offsets.task_real_parent,
            pointer_size,
        ),
        ("task_struct", "tgid", offsets.task_tgid, 4),
    ];
    for (struct_name, path, offset, member_size) in fields {
        let size = btf.struct_size(struct_name).unwrap();
        assert!(
            offset + member_size <= size,
            "{struct_name}.{path} at {offset} does not fit in {size} bytes"
        );
        assert_eq!(
            offset % member_size,
            0,
            "{struct_name}.{path} at {offset} is misaligned"
        );
        let (kind, kind_size) = member_kind(&btf, struct_name, path);
        if member_size == pointer_size && path != "i_ino" {
            assert_eq!(kind, BtfKind::Ptr, "{struct_name}.{path} is a pointer");
        } else {
            assert_eq!(kind, BtfKind::Int, "{struct_name}.{path} is an integer");
            assert_eq!(kind_size, member_size, "{struct_name}.{path} size");
        }
    }

    // `struct path` is { struct vfsmount *mnt; struct dentry *dentry; }.
    assert_eq!(btf.member_offset("path", "mnt").unwrap(), 0);
    assert_eq!(btf.member_offset("path", "dentry").unwrap(), pointer_size);
    let f_path = btf.member_offset("file", "f_path").unwrap();
    assert_eq!(offsets.file_dentry, f_path + pointer_size);

    // `struct qstr` keeps hash_len (an anonymous union) before the name.
    assert_eq!(btf.member_offset("qstr", "hash_len").unwrap(), 0);
    assert_eq!(btf.member_offset("qstr", "name").unwrap(), 8);
    let d_name = btf.member_offset("dentry", "d_name").unwrap();
    assert_eq!(offsets.dentry_name, d_name + 8);

    // Offsets within one struct are distinct.
    assert_ne!(offsets.binprm_file, offsets.binprm_filename);
    assert_ne!(offsets.file_inode, offsets.file_dentry);
    assert_ne!(offsets.inode_ino, offsets.inode_sb);
    assert_ne!(offsets.dentry_parent, offsets.dentry_inode);
    assert_ne!(offsets.dentry_name, offsets.dentry_parent);
    assert_ne!(offsets.task_real_parent, offsets.task_tgid);

    // The pointer ends the path.
    assert!(matches!(
        btf.member_offset("file", "f_path.dentry.d_name"),
        Err(BtfError::NotComposite {
            kind: "a pointer",
            ..
        })
    ));
    assert!(matches!(
        btf.member_offset("task_struct", "no_such_member"),
        Err(BtfError::MemberNotFound { .. })
    ));
}

#[test]
fn real_kernel_bitfields_are_rejected() {
    let Some(btf) = vmlinux() else { return };
    // `task_struct.sched_reset_on_fork` has been a one-bit field for a
    // long time; if it ever stops being one, look for another.
    match btf.member_offset("task_struct", "sched_reset_on_fork") {
        Err(BtfError::Bitfield { .. }) => {}
        other => panic!("expected a bitfield error, got {other:?}"),
    }
}

#[test]
fn resolves_guard_offsets_from_the_running_kernel() {
    let Some(btf) = vmlinux() else { return };
    let offsets = guard_offsets(&btf).unwrap();
    let pointer_size = btf.struct_size("path").unwrap() / 2;
    let fields: [(&str, &str, u32, u32, BtfKind); 9] = [
        ("bpf_map", "id", offsets.map_id, 4, BtfKind::Int),
        (
            "bpf_prog",
            "aux",
            offsets.prog_aux,
            pointer_size,
            BtfKind::Ptr,
        ),
        ("bpf_prog_aux", "id", offsets.prog_aux_id, 4, BtfKind::Int),
        (
            "vfsmount",
            "mnt_sb",
            offsets.mount_sb,
            pointer_size,
            BtfKind::Ptr,
        ),
        (
            "task_struct",
            "mm",
            offsets.task_mm,
            pointer_size,
            BtfKind::Ptr,
        ),
        (
            "mm_struct",
            "exe_file",
            offsets.mm_exe_file,
            pointer_size,
            BtfKind::Ptr,
        ),
        (
            "file",
            "f_inode",
            offsets.file_inode,
            pointer_size,
            BtfKind::Ptr,
        ),
        ("inode", "i_ino", offsets.inode_ino, 8, BtfKind::Int),
        ("super_block", "s_dev", offsets.sb_dev, 4, BtfKind::Int),
    ];
    for (struct_name, path, offset, member_size, expected_kind) in fields {
        let size = btf.struct_size(struct_name).unwrap();
        assert!(
            offset + member_size <= size,
            "{struct_name}.{path} at {offset} does not fit in {size} bytes"
        );
        assert_eq!(offset % member_size, 0, "{struct_name}.{path} misaligned");
        let (kind, kind_size) = member_kind(&btf, struct_name, path);
        assert_eq!(kind, expected_kind, "{struct_name}.{path} kind");
        if kind == BtfKind::Int {
            assert_eq!(kind_size, member_size, "{struct_name}.{path} size");
        }
    }
    // The exec programs read the same members at the same offsets.
    let exec = exec_offsets(&btf).unwrap();
    assert_eq!(offsets.inode_sb, exec.inode_sb);
    assert_eq!(offsets.task_real_parent, exec.task_real_parent);
}
