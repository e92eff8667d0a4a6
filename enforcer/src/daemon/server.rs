//! The control socket: one task per client, each request checked and
//! passed to the owner. A slow or broken client only ever costs its own
//! task.

use std::{sync::Arc, time::Duration};

use tokio::{
    net::{UnixListener, UnixStream},
    sync::{Notify, broadcast::error::RecvError, mpsc, oneshot},
    task::JoinSet,
    time::timeout,
};

use super::owner::{Command, Peer};
use crate::{
    control::{FrameError, Request, Response, read_frame, write_frame},
    events::hub::EventHub,
};

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until the task running it is dropped, which also drops every
/// client task (their command senders with them, so the owner can stop).
///
/// `unloaded` is notified once a client has removed enforcement, so that
/// the daemon stops.
pub async fn serve(
    listener: UnixListener,
    commands: mpsc::Sender<Command>,
    hub: Arc<EventHub>,
    unloaded: Arc<Notify>,
) {
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (commands, hub, unloaded) =
                        (commands.clone(), hub.clone(), unloaded.clone());
                    clients.spawn(async move {
                        if let Err(error) = handle(stream, commands, hub, unloaded).await {
                            eprintln!("enforcer: control client: {error}");
                        }
                    });
                }
                Err(error) => {
                    eprintln!("enforcer: control socket accept: {error}");
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
) -> Result<(), FrameError> {
    let credentials = stream.peer_cred()?;
    // The socket is mode 0600 already; this holds even if its mode is
    // loosened by hand.
    if credentials.uid() != 0 {
        let message = format!(
            "uid {} may not control the enforcer; only root may",
            credentials.uid()
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
        Request::Apply { sources } => {
            let response = ask(&commands, |reply| Command::Apply {
                sources,
                peer,
                reply,
            })
            .await;
            write_frame(&mut stream, &response).await
        }
        Request::Status => {
            let response = ask(&commands, |reply| Command::Status { reply }).await;
            write_frame(&mut stream, &response).await
        }
        Request::Rollback => {
            let response = ask(&commands, |reply| Command::Rollback { peer, reply }).await;
            write_frame(&mut stream, &response).await
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
    loop {
        match live.recv().await {
            Ok(line) => {
                write_frame(
                    stream,
                    &Response::Event {
                        line: line.to_string(),
                    },
                )
                .await?
            }
            Err(RecvError::Lagged(skipped)) => {
                write_frame(stream, &Response::Lagged { skipped }).await?
            }
            Err(RecvError::Closed) => return write_frame(stream, &Response::EndOfEvents).await,
        }
    }
}
