//! `execprobe CGROUP_DIR METHOD PATH [ARGS...]`: joins the cgroup v2
//! directory CGROUP_DIR, starts PATH (with ARGS) as a child by METHOD, waits
//! for it and reports what a parent observes, on stdout:
//!
//! ```text
//! pid N            the child's pid (absent when no child was made)
//! exit N           the child exited with status N, or
//! signal N         the child was killed by signal N, or
//! errno N          the exec itself failed with errno N
//! ...              then everything the child wrote to its stdout
//! ```
//!
//! METHOD is one of
//! - `execve`: fork, then execve(PATH);
//! - `execveat-fd`: open PATH with O_PATH, fork, then
//!   execveat(fd, "", AT_EMPTY_PATH), so the kernel gets no path at all;
//! - `posix-spawn`: posix_spawn(PATH);
//! - `shell-exec`: fork, then execve("/bin/sh", ["sh", "-c", "exec \"$0\"
//!   \"$@\"", PATH, ARGS...]): the shell replaces itself with PATH;
//! - `script`: like `execve`, for a PATH that is a `#!` script;
//! - `memfd`: copy PATH into a memfd, fork, then execveat(memfd, "",
//!   AT_EMPTY_PATH): a program with no name in any directory;
//! - `mprotect`: no child: map PATH readable, then make that mapping
//!   executable with mprotect; `exit 0` when it could, else `errno N`.
//!
//! The child's environment is execprobe's own. The cgroup is joined first,
//! so the child starts inside it. Anything that is not the child's own
//! outcome (bad arguments, failing to join the cgroup, to open PATH or to
//! fork) exits with status 2 and a message on stderr.

use std::{
    env,
    ffi::{CString, OsString},
    fs,
    io::{self, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::Path,
    process::ExitCode,
    ptr,
};

const USAGE: &str = "usage: execprobe CGROUP_DIR execve|execveat-fd|posix-spawn|shell-exec|script|memfd|mprotect PATH [ARGS...]";

unsafe extern "C" {
    static environ: *const *const libc::c_char;
}

/// What the parent saw of the child.
enum Outcome {
    Exit(i32),
    Signal(i32),
    Errno(i32),
}

/// A memfd holding the content of `path`.
fn copy_to_memfd(path: &CString) -> io::Result<OwnedFd> {
    let content = fs::read(Path::new(std::ffi::OsStr::from_bytes(path.as_bytes())))?;
    // SAFETY: a NUL-terminated name; the fd is checked and owned below.
    let fd = unsafe { libc::memfd_create(c"execprobe".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this fd, owned by nothing else.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    fs::File::from(memfd.try_clone()?).write_all(&content)?;
    Ok(memfd)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let [cgroup, method, path, rest @ ..] = args.as_slice() else {
        return fail(USAGE);
    };
    let Some(method) = method.to_str() else {
        return fail(USAGE);
    };
    let (Ok(path), Ok(rest)) = (
        c_string(path.clone()),
        rest.iter()
            .cloned()
            .map(c_string)
            .collect::<Result<Vec<_>, _>>(),
    ) else {
        return fail("arguments must not contain NUL bytes");
    };

    // Its children start in the cgroup too, with its uid.
    if let Err(error) = enforcer_integration_tests::privilege::join_cgroup(Path::new(cgroup)) {
        return fail(&error);
    }

    // argv[0] is PATH, as a shell would pass it.
    let mut argv = vec![path.clone()];
    argv.extend(rest.iter().cloned());

    let (output_read, output_write) = match pipe() {
        Ok(pipe) => pipe,
        Err(error) => return fail(&format!("cannot make a pipe: {error}")),
    };

    let started = match method {
        "execve" | "script" => fork_exec(&output_write, Exec::Path(&path), &argv),
        "execveat-fd" => {
            // SAFETY: a valid NUL-terminated path; the fd is checked below.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return fail(&format!(
                    "cannot open {path:?} with O_PATH: {}",
                    io::Error::last_os_error()
                ));
            }
            // SAFETY: open just returned this fd, owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            fork_exec(&output_write, Exec::Fd(fd.as_raw_fd()), &argv)
        }
        "posix-spawn" => posix_spawn(&output_write, &path, &argv),
        "memfd" => {
            let memfd = match copy_to_memfd(&path) {
                Ok(memfd) => memfd,
                Err(error) => return fail(&format!("cannot copy {path:?} into a memfd: {error}")),
            };
            fork_exec(&output_write, Exec::Fd(memfd.as_raw_fd()), &argv)
        }
        "mprotect" => Ok((None, Some(map_then_make_executable(&path)))),
        "shell-exec" => {
            let mut shell_argv = vec![
                CString::from(c"sh"),
                CString::from(c"-c"),
                CString::from(c"exec \"$0\" \"$@\""),
            ];
            shell_argv.extend(argv.iter().cloned());
            fork_exec(&output_write, Exec::Path(c"/bin/sh"), &shell_argv)
        }
        _ => return fail(USAGE),
    };
    // Only the child (and whatever it starts) may hold the write end now, so
    // reading to the end waits for it to exit or close its stdout.
    drop(output_write);

    let (pid, outcome) = match started {
        Ok(started) => started,
        Err(error) => return fail(&error),
    };
    let mut output = Vec::new();
    let _ = fs::File::from(output_read).read_to_end(&mut output);
    let outcome = match (pid, outcome) {
        (Some(pid), None) => match wait(pid) {
            Ok(outcome) => outcome,
            Err(error) => return fail(&format!("waitpid({pid}) failed: {error}")),
        },
        (_, Some(outcome)) => outcome,
        (None, None) => unreachable!("a method either starts a child or reports why not"),
    };

    let mut stdout = io::stdout().lock();
    if let Some(pid) = pid {
        let _ = writeln!(stdout, "pid {pid}");
    }
    let _ = match outcome {
        Outcome::Exit(code) => writeln!(stdout, "exit {code}"),
        Outcome::Signal(signal) => writeln!(stdout, "signal {signal}"),
        Outcome::Errno(errno) => writeln!(stdout, "errno {errno}"),
    };
    let _ = stdout.write_all(&output);
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("execprobe: {message}");
    ExitCode::from(2)
}

fn c_string(text: OsString) -> Result<CString, std::ffi::NulError> {
    CString::new(text.into_vec())
}

/// Maps the first page of `path` readable, then asks for it executable.
fn map_then_make_executable(path: &std::ffi::CStr) -> Outcome {
    let errno = || Outcome::Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    // SAFETY: a NUL-terminated path; the fd is checked and owned below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return errno();
    }
    // SAFETY: open just returned this fd, owned by nothing else.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    const PAGE: usize = 4096;
    // SAFETY: a fresh private mapping of an open file, unmapped below.
    let area = unsafe {
        libc::mmap(
            ptr::null_mut(),
            PAGE,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if area == libc::MAP_FAILED {
        return errno();
    }
    // SAFETY: the mapping made above, of PAGE bytes.
    let outcome = match unsafe { libc::mprotect(area, PAGE, libc::PROT_READ | libc::PROT_EXEC) } {
        0 => Outcome::Exit(0),
        _ => errno(),
    };
    // SAFETY: the same mapping, not used after this.
    unsafe { libc::munmap(area, PAGE) };
    outcome
}

/// A pipe whose ends are both close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these fds, owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A NULL-terminated array of pointers into `strings`, which must outlive it.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr())
        .chain([ptr::null()])
        .collect()
}

enum Exec<'a> {
    Path(&'a std::ffi::CStr),
    Fd(RawFd),
}

/// Forks a child that makes `output` its stdout and execs; returns its pid,
/// and an outcome when the exec itself failed (its errno comes back over a
/// close-on-exec pipe, which a successful exec closes without a word).
fn fork_exec(
    output: &OwnedFd,
    exec: Exec<'_>,
    argv: &[CString],
) -> Result<(Option<u32>, Option<Outcome>), String> {
    let argv_ptrs = pointers(argv);
    let (error_read, error_write) =
        pipe().map_err(|error| format!("cannot make a pipe: {error}"))?;
    let output = output.as_raw_fd();
    let error_fd = error_write.as_raw_fd();

    // SAFETY: the child only makes async-signal-safe calls (dup2, execve,
    // syscall, write, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; every pointer points into live, NUL-terminated
        // data owned by the parent's frame, copied into the child.
        unsafe {
            if libc::dup2(output, 1) < 0 {
                libc::_exit(126);
            }
            match exec {
                Exec::Path(path) => {
                    libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), environ);
                }
                Exec::Fd(fd) => {
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        c"".as_ptr(),
                        argv_ptrs.as_ptr(),
                        environ,
                        libc::AT_EMPTY_PATH,
                    );
                }
            }
            let errno = *libc::__errno_location();
            let bytes = errno.to_ne_bytes();
            libc::write(error_fd, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
    }
    drop(error_write);
    let mut bytes = [0u8; 4];
    let mut error_read = fs::File::from(error_read);
    let outcome = match error_read.read_exact(&mut bytes) {
        Ok(()) => {
            // Reap the child, which exits 127 right after reporting.
            let _ = wait(pid as u32);
            Some(Outcome::Errno(i32::from_ne_bytes(bytes)))
        }
        Err(_) => None,
    };
    Ok((Some(pid as u32), outcome))
}

/// posix_spawn(PATH) with `output` as the child's stdout. A failed exec
/// comes back as posix_spawn's own error number.
fn posix_spawn(
    output: &OwnedFd,
    path: &std::ffi::CStr,
    argv: &[CString],
) -> Result<(Option<u32>, Option<Outcome>), String> {
    let argv_ptrs = pointers(argv);
    let mut pid: libc::pid_t = 0;
    // SAFETY: the file actions are initialised before use and destroyed
    // after; every pointer points into live, NUL-terminated data.
    let result = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        if libc::posix_spawn_file_actions_init(&mut actions) != 0 {
            return Err("posix_spawn_file_actions_init failed".to_string());
        }
        libc::posix_spawn_file_actions_adddup2(&mut actions, output.as_raw_fd(), 1);
        let result = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions,
            ptr::null(),
            argv_ptrs.as_ptr().cast(),
            environ.cast(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    };
    if result != 0 {
        return Ok((None, Some(Outcome::Errno(result))));
    }
    Ok((Some(pid as u32), None))
}

fn wait(pid: u32) -> io::Result<Outcome> {
    let mut status = 0;
    loop {
        // SAFETY: a valid out-pointer for the status.
        let result = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if result >= 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(Outcome::Signal(libc::WTERMSIG(status)))
    } else {
        Ok(Outcome::Exit(libc::WEXITSTATUS(status)))
    }
}
