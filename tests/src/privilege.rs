//! How the probe helpers enter a test's cgroup and, when asked, give up
//! root, so a test can show that enforcement holds for an unprivileged user.

use std::{env, fs, path::Path};

/// Set for `netprobe` and `execprobe` to a uid: after joining the cgroup,
/// which takes root, they drop to that uid (and the same gid, with no
/// supplementary groups) before they act, as an unprivileged user would.
pub(crate) const RUN_AS_UID: &str = "ENFORCER_PROBE_UID";

/// The uid of `nobody`, for probes that must show enforcement holds for
/// an unprivileged user.
pub const NOBODY: u32 = 65534;

/// A second unprivileged uid, with no account, for tests of what one
/// user's traffic may do to another's.
pub const ANOTHER_USER: u32 = 65533;

/// What `netprobe` and `execprobe` do first: move themselves into
/// `cgroup` ("0" moves the writing process), then drop to the uid in
/// `ENFORCER_PROBE_UID` if it is set.
pub fn join_cgroup(cgroup: &Path) -> Result<(), String> {
    let procs = cgroup.join("cgroup.procs");
    fs::write(&procs, "0").map_err(|error| format!("cannot join {}: {error}", procs.display()))?;
    let Some(uid) = env::var_os(RUN_AS_UID) else {
        return Ok(());
    };
    let uid: u32 = uid
        .to_str()
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| format!("{RUN_AS_UID}={uid:?} is not a uid"))?;
    // SAFETY: plain syscalls on this process's own credentials; groups
    // first, while it still may change them.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(uid, uid, uid) == 0
            && libc::setresuid(uid, uid, uid) == 0
    };
    if !dropped {
        return Err(format!(
            "cannot drop to uid {uid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
