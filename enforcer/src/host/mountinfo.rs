//! `/proc/self/mountinfo`: what is mounted where.

use std::{ffi::CStr, fs, io, path::PathBuf};

/// One mount. Lines read `id parent major:minor root mount_point options
/// [optional fields...] - fstype source superoptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The mount's id, as `name_to_handle_at` reports it.
    pub id: i32,
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that is mounted (`/` for all of it).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
}

pub(crate) fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(&fs::read_to_string("/proc/self/mountinfo")?))
}

pub(crate) fn parse(table: &str) -> Vec<Mount> {
    table.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split_whitespace();
    let id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.nth(1)?.split_once(':')?;
    let root = unescape_octal(fields.next()?);
    let mount_point = PathBuf::from(unescape_octal(fields.next()?));
    Some(Mount {
        id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        fstype: after.split_whitespace().next()?.to_string(),
    })
}

/// Mounts a kernel pseudo filesystem (securityfs, tracefs) at its usual
/// place, for hosts whose init did not. A failure is left for the reader
/// of the filesystem to report, with its own context.
pub(crate) fn mount_pseudo_fs(fstype: &CStr, target: &CStr) {
    // SAFETY: NUL-terminated strings and no mount data.
    unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                out.push((digits[0] - b'0') * 64 + (digits[1] - b'0') * 8 + (digits[2] - b'0'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_escapes() {
        let table = "\
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
40 1 8:2 /@home /home rw,relatime - btrfs /dev/sda2 rw
41 1 0:30 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw
";
        let mounts = parse(table);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].fstype, "cgroup2");
        assert_eq!(mounts[1].id, 40);
        assert_eq!(
            mounts[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert_eq!(
            (mounts[1].major, mounts[1].minor, mounts[1].root.as_str()),
            (8, 2, "/@home")
        );
        assert_eq!(mounts[2].mount_point, PathBuf::from("/mnt/my disk"));
    }
}
