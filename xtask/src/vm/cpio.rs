//! A `newc` cpio archive, the format the kernel unpacks as an initramfs.
//! The guest's tree is collected first (guest path to entry), so parents
//! precede children and every path appears once; file contents are
//! streamed from the host when the archive is written.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, BufWriter, Write},
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result, bail};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

enum Entry {
    Dir,
    /// Contents read from this host file when the archive is written.
    HostFile {
        source: PathBuf,
        mode: u32,
    },
    Bytes {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink(PathBuf),
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// The guest's root file system, keyed by absolute guest path.
#[derive(Default)]
pub(super) struct Tree {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Tree {
    pub(super) fn dir(&mut self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        for ancestor in path.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if ancestor != Path::new("/") {
                self.entries
                    .entry(ancestor.to_path_buf())
                    .or_insert(Entry::Dir);
            }
        }
    }

    fn parent_dirs(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.dir(parent);
        }
    }

    /// `source` from the host, at `path` in the guest, with its mode.
    pub(super) fn file(&mut self, path: impl AsRef<Path>, source: impl AsRef<Path>) -> Result<()> {
        let (path, source) = (path.as_ref(), source.as_ref());
        let meta = fs::metadata(source).with_context(|| format!("reading {}", source.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", source.display());
        }
        self.parent_dirs(path);
        self.entries.insert(
            path.to_path_buf(),
            Entry::HostFile {
                source: source.to_path_buf(),
                mode: meta.permissions().mode() & 0o7777,
            },
        );
        Ok(())
    }

    pub(super) fn bytes(&mut self, path: impl AsRef<Path>, data: impl Into<Vec<u8>>, mode: u32) {
        let path = path.as_ref();
        self.parent_dirs(path);
        self.entries.insert(
            path.to_path_buf(),
            Entry::Bytes {
                data: data.into(),
                mode,
            },
        );
    }

    pub(super) fn symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) {
        let path = path.as_ref();
        self.parent_dirs(path);
        self.entries
            .insert(path.to_path_buf(), Entry::Symlink(target.as_ref().into()));
    }

    pub(super) fn char_device(&mut self, path: impl AsRef<Path>, major: u32, minor: u32) {
        let path = path.as_ref();
        self.parent_dirs(path);
        self.entries
            .insert(path.to_path_buf(), Entry::CharDevice { major, minor });
    }

    /// A host path copied to the same path in the guest, the way the host
    /// reaches it: every symlink on the way (`/bin -> usr/bin`,
    /// `/lib64/ld-linux-x86-64.so.2 -> ...`) becomes the same symlink in
    /// the guest, and what it points to is copied too.
    pub(super) fn host_path(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.host_path_depth(path.as_ref(), 0)
    }

    fn host_path_depth(&mut self, path: &Path, depth: usize) -> Result<()> {
        if depth > 40 {
            bail!("too many levels of symbolic links at {}", path.display());
        }
        if !path.is_absolute() {
            bail!("{} is not an absolute path", path.display());
        }
        let mut walked = PathBuf::from("/");
        let components: Vec<Component> = path.components().skip(1).collect();
        for (at, component) in components.iter().enumerate() {
            let here = walked.join(component);
            let meta = fs::symlink_metadata(&here)
                .with_context(|| format!("reading {}", here.display()))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&here)?;
                self.symlink(&here, &target);
                let mut resolved = normalize(&walked.join(&target));
                for rest in &components[at + 1..] {
                    resolved.push(rest);
                }
                return self.host_path_depth(&resolved, depth + 1);
            }
            if at + 1 == components.len() {
                if meta.is_dir() {
                    self.dir(&here);
                } else {
                    self.file(&here, &here)?;
                }
            }
            walked = here;
        }
        Ok(())
    }

    /// Writes the archive.
    pub(super) fn write(&self, out: &Path) -> Result<u64> {
        let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut writer = Writer {
            out: BufWriter::with_capacity(1 << 20, file),
            written: 0,
            ino: 1,
        };
        for (path, entry) in &self.entries {
            let name = path
                .strip_prefix("/")
                .expect("guest paths are absolute")
                .to_str()
                .with_context(|| format!("{} is not UTF-8", path.display()))?;
            writer
                .entry(name, entry)
                .with_context(|| format!("archiving {}", path.display()))?;
        }
        writer.header("TRAILER!!!", 0, 0, 0, (0, 0))?;
        writer.out.flush()?;
        Ok(writer.written)
    }
}

/// `a/b/../c` to `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

struct Writer {
    out: BufWriter<File>,
    written: u64,
    ino: u32,
}

impl Writer {
    fn entry(&mut self, name: &str, entry: &Entry) -> Result<()> {
        match entry {
            Entry::Dir => self.header(name, S_IFDIR | 0o755, 2, 0, (0, 0)),
            Entry::Bytes { data, mode } => {
                self.header(name, S_IFREG | mode, 1, data.len(), (0, 0))?;
                self.data(data)
            }
            Entry::Symlink(target) => {
                let target = target.as_os_str().as_encoded_bytes();
                self.header(name, S_IFLNK | 0o777, 1, target.len(), (0, 0))?;
                self.data(target)
            }
            Entry::CharDevice { major, minor } => {
                self.header(name, S_IFCHR | 0o600, 1, 0, (*major, *minor))
            }
            Entry::HostFile { source, mode } => {
                let mut file = File::open(source)?;
                let size = file.metadata()?.len();
                let size = usize::try_from(size)?;
                if size > u32::MAX as usize {
                    bail!("{} is larger than cpio allows", source.display());
                }
                self.header(name, S_IFREG | mode, 1, size, (0, 0))?;
                let copied = io::copy(&mut file, &mut self.out)?;
                if copied != size as u64 {
                    bail!("{} changed while it was archived", source.display());
                }
                self.written += copied;
                self.pad()
            }
        }
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        size: usize,
        rdev: (u32, u32),
    ) -> Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: reproducible archives
            u32::try_from(size)?,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1)?,
            0, // check
        ];
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += (header.len() + name.len() + 1) as u64;
        self.pad()
    }

    fn data(&mut self, data: &[u8]) -> Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad()
    }

    /// Headers and data start at multiples of four.
    fn pad(&mut self) -> Result<()> {
        let padding = (4 - self.written % 4) % 4;
        self.out.write_all(&[0; 3][..padding as usize])?;
        self.written += padding;
        Ok(())
    }
}
