//! The control protocol between the CLI and the daemon: length-prefixed
//! JSON frames over a Unix stream socket.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! JSON. The length is checked before anything is read, so a huge or
//! garbage length costs the daemon nothing.

use std::{io, path::Path};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use crate::{
    compile::ImageStats,
    kernel::family::{Degradation, FamilyStatus, VerifiedProgram},
    kernel::hits::RuleHitsReport,
    kernel::maps::{CounterTotals, Slot},
    policy::{PolicyErrors, Source, diff::PolicyDiff, diff::RuleSummary},
};

pub const DEFAULT_SOCKET: &str = "/run/enforcer/control.sock";

/// Large enough for a policy of a million CIDRs in text.
pub const MAX_FRAME: u32 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Apply {
        sources: Vec<Source>,
    },
    /// A signed bundle (see `crate::store::signing`): required when the daemon
    /// has trusted keys.
    ApplySigned {
        bundle: crate::store::signing::Bundle,
    },
    Status,
    Events {
        follow: bool,
    },
    /// Remove enforcement: detach and unpin everything, then stop.
    Unload,
    /// Apply the policy that was in force before the last apply.
    Rollback,
}

// One response per request, sent and dropped: its size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Applied(ApplyReport),
    /// The policy did not validate; nothing changed.
    Invalid {
        errors: PolicyErrors,
    },
    Status(StatusReport),
    Event {
        line: String,
    },
    /// A follower fell behind and missed this many events.
    Lagged {
        skipped: u64,
    },
    EndOfEvents,
    /// Enforcement is removed; the daemon stops.
    Unloaded {
        pins_removed: usize,
    },
    /// The request failed; nothing changed.
    Error {
        message: String,
    },
}

impl Response {
    /// This answer, to a request that expects another kind.
    pub fn unexpected(self) -> ClientError {
        ClientError::Unexpected(format!("{self:?}"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyReport {
    /// `false` when the policy sent is the one in force, signature and
    /// all: nothing was switched, and `generation` is the live one.
    #[serde(default = "changed_by_default")]
    pub changed: bool,
    pub generation: u64,
    pub diff: PolicyDiff,
    pub before: ImageStats,
    pub after: ImageStats,
    /// Exec paths that do not exist now; they are watched and banned when
    /// they appear.
    pub missing_paths: Vec<String>,
    /// The families this kernel refused that the policy has rules or
    /// options for: those parts are not enforced, the rest is.
    #[serde(default)]
    pub not_enforced: Vec<Degradation>,
}

/// Reports from daemons before `changed` existed were all of a switch.
fn changed_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub cgroup: String,
    pub programs: Vec<String>,
    /// How banned executables are stopped: "lsm", "signal", or why they
    /// cannot be.
    pub exec_enforcement: String,
    /// How domain rules are enforced: "kernel", or why they cannot be.
    #[serde(default)]
    pub domain_enforcement: String,
    /// "lsm" while the guard keeps other processes away from the
    /// enforcer's objects, pins and daemon, or why it cannot here.
    #[serde(default)]
    pub self_protection: String,
    /// Every program family: enforcing, loaded, not checked yet, or
    /// unavailable with the reason.
    #[serde(default)]
    pub families: Vec<FamilyStatus>,
    /// Every loaded program with the verifier's instruction count.
    #[serde(default)]
    pub programs_verified: Vec<VerifiedProgram>,
    pub generation: u64,
    /// The content hash of the policy's files: names and texts.
    #[serde(default)]
    pub policy_sha256: String,
    pub applied_at: String,
    /// The uid that applied the policy; `None` for the policy given at start.
    pub applied_by: Option<u32>,
    pub rules: Vec<RuleSummary>,
    pub image: ImageStats,
    /// Absent from the status of a daemon older than the sized slot.
    #[serde(default)]
    pub image_slot: Option<ImageSlot>,
    /// Exec paths of the policy that do not exist now.
    pub missing_paths: Vec<String>,
    pub counters: CounterTotals,
    /// Absent from the status of a daemon older than the hit counts.
    #[serde(default)]
    pub rule_hits: RuleHitsReport,
}

/// Where the live image is (see `crate::kernel::maps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSlot {
    pub slot: Slot,
    /// The size of every image in the sized slot, chosen at start.
    pub sized_capacity_words: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(u32),
    #[error("a malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

impl FrameError {
    /// The client closed its end first: how a follower of events leaves,
    /// and nothing the daemon needs to report.
    pub fn is_peer_gone(&self) -> bool {
        matches!(
            self,
            Self::Io(error)
                if matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
        )
    }
}

pub async fn write_frame<T: Serialize>(
    writer: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    let mut frame = Vec::new();
    append_frame(&mut frame, message)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Appends `message`, framed, to `frames`: several frames can then go out
/// in one write.
pub fn append_frame<T: Serialize>(frames: &mut Vec<u8>, message: &T) -> Result<(), FrameError> {
    let start = frames.len();
    frames.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *frames, message)?;
    let length = u32::try_from(frames.len() - start - 4)
        .ok()
        .filter(|&n| n <= MAX_FRAME);
    let Some(length) = length else {
        frames.truncate(start);
        return Err(FrameError::TooLarge(u32::MAX));
    };
    frames[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// The next message, or `None` when the peer closed the stream cleanly
/// between frames.
pub async fn read_frame<T: DeserializeOwned>(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, FrameError> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    let length = u32::from_be_bytes(length);
    if length > MAX_FRAME {
        return Err(FrameError::TooLarge(length));
    }
    // Grown as bytes arrive, not allocated up front: a peer that promises
    // a large frame and sends little costs little.
    let mut body = Vec::new();
    reader
        .take(u64::from(length))
        .read_to_end(&mut body)
        .await?;
    if body.len() != length as usize {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(serde_json::from_slice(&body)?))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the enforcer daemon at {path} ({source}); is `enforcer run` running, and is --socket right?"
    )]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Frame(#[from] FrameError),
    #[error("the daemon closed the connection without answering")]
    Closed,
    /// The daemon refused the request, and said why.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from the daemon: {0}")]
    Unexpected(String),
}

pub struct Client {
    /// Buffered: a stream of events arrives as many small frames.
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the daemon at `path` and sends it `request`.
    pub async fn request(path: &Path, request: &Request) -> Result<Self, ClientError> {
        let mut client = Self::connect(path).await?;
        client.send(request).await?;
        Ok(client)
    }

    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request`. When the daemon has already closed its side (it
    /// refuses a peer before reading), its answer is still waiting to be
    /// received, so a broken pipe is not an error here.
    pub async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        match write_frame(&mut self.stream, request).await {
            Err(FrameError::Io(error)) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            sent => Ok(sent?),
        }
    }

    /// The daemon's next answer; its refusal comes back as
    /// [`ClientError::Refused`], so callers match only what they asked for.
    pub async fn receive(&mut self) -> Result<Response, ClientError> {
        match read_frame(&mut self.stream).await? {
            Some(Response::Error { message }) => Err(ClientError::Refused(message)),
            Some(response) => Ok(response),
            None => Err(ClientError::Closed),
        }
    }

    /// Whether a received frame (or part of one) is waiting in the buffer:
    /// if not, the next `receive` waits for the daemon.
    pub fn has_buffered(&self) -> bool {
        !self.stream.buffer().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_left_is_told_apart_from_other_errors() {
        let (mut daemon_end, client_end) = UnixStream::pair().unwrap();
        drop(client_end);
        let error = write_frame(&mut daemon_end, &Response::EndOfEvents)
            .await
            .unwrap_err();
        assert!(error.is_peer_gone(), "{error}");
        assert!(!FrameError::TooLarge(MAX_FRAME + 1).is_peer_gone());
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, &Request::Events { follow: true })
            .await
            .unwrap();
        drop(a);
        let request: Request = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(request, Request::Events { follow: true }));
        assert!(read_frame::<Request>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn frames_appended_together_read_back_one_by_one() {
        let mut frames = Vec::new();
        for line in ["one", "two"] {
            append_frame(&mut frames, &Response::Event { line: line.into() }).unwrap();
        }
        append_frame(&mut frames, &Response::EndOfEvents).unwrap();
        let mut reader = frames.as_slice();
        for line in ["one", "two"] {
            let response: Response = read_frame(&mut reader).await.unwrap().unwrap();
            assert!(matches!(response, Response::Event { line: got } if got == line));
        }
        let last: Response = read_frame(&mut reader).await.unwrap().unwrap();
        assert!(matches!(last, Response::EndOfEvents));
        assert!(read_frame::<Response>(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_an_oversized_length_without_reading_on() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).await.unwrap();
        let error = read_frame::<Request>(&mut b).await.unwrap_err();
        assert!(matches!(error, FrameError::TooLarge(n) if n == MAX_FRAME + 1));
    }

    #[tokio::test]
    async fn reports_garbage_and_truncation() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{oops").await.unwrap();
        assert!(matches!(
            read_frame::<Request>(&mut b).await,
            Err(FrameError::Json(_))
        ));

        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{}").await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<Request>(&mut b).await,
            Err(FrameError::Io(_))
        ));
    }

    fn decode(bytes: &[u8]) -> Result<Option<Request>, FrameError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_frame::<Request>(&mut &bytes[..]))
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn a_frame_promising_the_most_and_sending_little_is_a_truncation() {
        let mut bytes = MAX_FRAME.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"{"request":"status"}"#);
        assert!(matches!(decode(&bytes), Err(FrameError::Io(_))));
        assert!(
            matches!(decode(&[0, 0]), Ok(None)),
            "a cut length is an end"
        );
    }

    proptest::proptest! {
        /// Whatever a peer sends, decoding ends with a request, an end or an
        /// error: never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode(&bytes);
        }

        /// Valid requests with bytes changed or cut off.
        #[test]
        fn damaged_requests_decode_or_fail_cleanly(
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
        ) {
            let body = serde_json::to_vec(&Request::Apply {
                sources: vec![crate::policy::Source {
                    name: "p.toml".into(),
                    text: "version = 1\n[[block]]\nname = \"x\"\ncidrs = [\"10.0.0.0/8\"]\n".into(),
                }],
            })
            .unwrap();
            let mut bytes = frame(&body);
            let len = bytes.len();
            for (at, value) in flips {
                bytes[at % len] = value;
            }
            bytes.truncate(cut.min(len));
            let _ = decode(&bytes);
        }
    }
}
