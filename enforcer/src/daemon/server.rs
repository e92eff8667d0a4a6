//! The control socket: one task per client, each request checked and
//! passed to the owner. A slow or broken client only ever costs its own
//! task.

use std::{
    io,
    os::fd::{AsFd, AsRawFd as _},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{UnixListener, UnixStream},
    sync::{
        Notify,
        broadcast::error::{RecvError, TryRecvError},
        mpsc, oneshot,
    },
    task::JoinSet,
    time::timeout,
};

use super::{
    owner::{Command, Peer},
    process::release_freed_memory,
};
use crate::{
    control::{FrameError, Request, Response, append_frame, read_frame, write_frame},
    events::{Event, EventBody, hub::EventHub},
    policy::Source,
    store::saved::{StoredPolicy, digest},
    store::signing::TrustedKeys,
};

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until the task running it is dropped, which also drops every
/// client task (their command senders with them, so the owner can stop).
///
/// `unloaded` is notified once a client has removed enforcement, so that
/// the daemon stops.
pub(super) async fn serve(
    listener: UnixListener,
    commands: mpsc::Sender<Command>,
    hub: Arc<EventHub>,
    unloaded: Arc<Notify>,
    access: Arc<Access>,
) {
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (commands, hub, unloaded, access) =
                        (commands.clone(), hub.clone(), unloaded.clone(), access.clone());
                    clients.spawn(async move {
                        if let Err(error) = handle(stream, commands, hub, unloaded, access).await
                            && !error.is_peer_gone()
                        {
                            log::warn!("control client: {error}");
                        }
                    });
                }
                Err(error) => {
                    log::warn!("control socket accept: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = clients.join_next() => {}
        }
    }
}

async fn handle(
    mut stream: UnixStream,
    commands: mpsc::Sender<Command>,
    hub: Arc<EventHub>,
    unloaded: Arc<Notify>,
    access: Arc<Access>,
) -> Result<(), FrameError> {
    let credentials = stream.peer_cred()?;
    // The socket's mode keeps others out already; this holds even if its
    // mode is loosened by hand.
    let root = credentials.uid() == 0;
    if !root && !access.admits(credentials.gid(), || peer_groups(&stream)) {
        let message = format!(
            "uid {} may not control the enforcer; only root{} may",
            credentials.uid(),
            access.describe()
        );
        return write_frame(&mut stream, &Response::Error { message }).await;
    }
    let peer = Peer {
        uid: credentials.uid(),
        pid: credentials.pid().and_then(|pid| u32::try_from(pid).ok()),
    };

    let request = match timeout(REQUEST_TIMEOUT, read_frame::<Request>(&mut stream)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(error)) => {
            let message = format!("bad request: {error}");
            return write_frame(&mut stream, &Response::Error { message }).await;
        }
        Err(_) => {
            let message = format!("no complete request within {} s", REQUEST_TIMEOUT.as_secs());
            return write_frame(&mut stream, &Response::Error { message }).await;
        }
    };

    match request {
        Request::Apply { sources } if access.trusted.required() => {
            let reason = "this daemon accepts only signed policy bundles \
                          (enforcer policy sign, then policy apply --bundle)"
                .to_string();
            refuse(&mut stream, &hub, peer, &sources, reason).await
        }
        Request::ApplySigned { bundle } => {
            if access.trusted.required()
                && let Err(error) = access.trusted.verify(&bundle)
            {
                return refuse(&mut stream, &hub, peer, &bundle.sources, error.to_string()).await;
            }
            apply(&mut stream, &commands, peer, bundle.into()).await
        }
        Request::Apply { sources } => {
            apply(
                &mut stream,
                &commands,
                peer,
                StoredPolicy::unsigned(sources),
            )
            .await
        }
        Request::Status => {
            let response = ask(&commands, |reply| Command::Status { reply }).await;
            write_frame(&mut stream, &response).await
        }
        Request::Rollback => {
            let response = ask(&commands, |reply| Command::Rollback { peer, reply }).await;
            reply_and_release(&mut stream, response).await
        }
        Request::Unload if !root => {
            let message = "only root may remove enforcement".to_string();
            write_frame(&mut stream, &Response::Error { message }).await
        }
        Request::Unload => {
            let response = ask(&commands, |reply| Command::Unload { peer, reply }).await;
            let written = write_frame(&mut stream, &response).await;
            if matches!(response, Response::Unloaded { .. }) {
                unloaded.notify_one();
            }
            written
        }
        Request::Events { follow } => {
            // A follower may stay for days; it has no business with the owner.
            drop(commands);
            stream_events(&mut stream, &hub, follow).await
        }
    }
}

async fn apply(
    stream: &mut UnixStream,
    commands: &mpsc::Sender<Command>,
    peer: Peer,
    policy: StoredPolicy,
) -> Result<(), FrameError> {
    let response = ask(commands, |reply| Command::Apply {
        policy,
        peer,
        reply,
    })
    .await;
    reply_and_release(stream, response).await
}

/// Sends the report of an apply or a rollback, releasing what it held
/// first (a diff between two large policies alone can hold a hundred
/// megabytes), so that the memory is back by the time the client hears.
async fn reply_and_release(stream: &mut UnixStream, response: Response) -> Result<(), FrameError> {
    let mut frame = Vec::new();
    append_frame(&mut frame, &response)?;
    drop(response);
    release_freed_memory();
    stream.write_all(&frame).await?;
    Ok(())
}

/// Refuses a policy for its signature, and says so in an event too.
async fn refuse(
    stream: &mut UnixStream,
    hub: &EventHub,
    peer: Peer,
    sources: &[Source],
    reason: String,
) -> Result<(), FrameError> {
    hub.publish(&Event::now(EventBody::PolicyRefused {
        reason: reason.clone(),
        sha256: digest(sources),
        uid: peer.uid,
        pid: peer.pid,
    }));
    let message = format!("the policy was refused, nothing changed: {reason}");
    write_frame(stream, &Response::Error { message }).await
}

/// Who besides root may use the control socket (the members of one group,
/// if the daemon was given one), and whose signatures policy must carry.
#[derive(Debug, Clone, Default)]
pub(super) struct Access {
    pub group: Option<u32>,
    pub trusted: TrustedKeys,
}

impl Access {
    /// Whether a peer with primary group `gid` (or one of its
    /// `supplementary` groups, asked for only when needed) is a member of
    /// the group.
    fn admits(&self, gid: u32, supplementary: impl FnOnce() -> Vec<u32>) -> bool {
        let Some(group) = self.group else {
            return false;
        };
        gid == group || supplementary().contains(&group)
    }

    fn describe(&self) -> String {
        self.group
            .map_or(String::new(), |gid| format!(" and members of group {gid}"))
    }
}

/// The supplementary groups the peer had when it connected, which the
/// kernel keeps with its credentials (`SO_PEERGROUPS`, Linux 4.13). Unlike
/// `/proc/PID/status`, they cannot be another process's that reused the
/// pid meanwhile. Empty when the kernel cannot say.
fn peer_groups(socket: &impl AsFd) -> Vec<u32> {
    const GID_SIZE: usize = size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut length = (groups.len() * GID_SIZE) as libc::socklen_t;
        // SAFETY: the buffer has room for `length` bytes, and the kernel
        // writes no more than that.
        let result = unsafe {
            libc::getsockopt(
                socket.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut length,
            )
        };
        let count = length as usize / GID_SIZE;
        if result == 0 {
            groups.truncate(count);
            return groups;
        }
        // On ERANGE the kernel has set `length` to the room all the groups
        // need.
        let too_small = io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
        if !too_small || count <= groups.len() {
            return Vec::new();
        }
        groups.resize(count, 0);
    }
}

async fn ask(
    commands: &mpsc::Sender<Command>,
    command: impl FnOnce(oneshot::Sender<Response>) -> Command,
) -> Response {
    let (reply, answer) = oneshot::channel();
    if commands.send(command(reply)).await.is_err() {
        return Response::Error {
            message: "the daemon is shutting down".into(),
        };
    }
    answer.await.unwrap_or_else(|_| Response::Error {
        message: "the daemon is shutting down".into(),
    })
}

async fn stream_events(
    stream: &mut UnixStream,
    hub: &EventHub,
    follow: bool,
) -> Result<(), FrameError> {
    let (history, mut live) = hub.subscribe();
    for line in history {
        write_frame(
            stream,
            &Response::Event {
                line: line.to_string(),
            },
        )
        .await?;
    }
    if !follow {
        return write_frame(stream, &Response::EndOfEvents).await;
    }
    let mut frames = Vec::new();
    loop {
        let mut next = Some(live.recv().await);
        let mut batched = 0;
        // Whatever else is already waiting goes out in the same write: one
        // write per event could not keep up with a storm.
        while let Some(received) = next.take() {
            let response = match received {
                Ok(line) => Response::Event {
                    line: line.to_string(),
                },
                Err(RecvError::Lagged(skipped)) => Response::Lagged { skipped },
                Err(RecvError::Closed) => {
                    stream.write_all(&frames).await?;
                    return write_frame(stream, &Response::EndOfEvents).await;
                }
            };
            append_frame(&mut frames, &response)?;
            batched += 1;
            if batched == FOLLOW_BATCH {
                break;
            }
            next = match live.try_recv() {
                Ok(line) => Some(Ok(line)),
                Err(TryRecvError::Lagged(skipped)) => Some(Err(RecvError::Lagged(skipped))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
        stream.write_all(&frames).await?;
        frames.clear();
    }
}

/// Events a follower is sent in one write at most.
const FOLLOW_BATCH: usize = 256;

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn peer_groups_are_the_connecting_process_groups() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut expected: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|gid| gid.as_raw())
            .collect();
        let mut reported = peer_groups(&ours);
        expected.sort_unstable();
        reported.sort_unstable();
        assert_eq!(reported, expected);
        drop(theirs);
    }

    #[test]
    fn admits_by_primary_or_supplementary_group_only_when_one_is_set() {
        let access = |group| Access {
            group,
            trusted: TrustedKeys::default(),
        };
        let unasked = || -> Vec<u32> { panic!("supplementary groups asked for") };
        assert!(access(Some(7)).admits(7, unasked));
        assert!(access(Some(7)).admits(1, || vec![3, 7]));
        assert!(!access(Some(7)).admits(1, || vec![3]));
        assert!(!access(None).admits(7, unasked));
    }
}
