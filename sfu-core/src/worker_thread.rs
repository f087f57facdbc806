//! The thin I/O loop around a [`WorkerCore`]: one OS thread, one UDP socket, one mio poll.
//!
//! The loop sleeps until the socket is readable, a command arrives (a mio `Waker` rings), or
//! the earliest session deadline is due. It reads every waiting datagram, feeds the core, and
//! sends what the core put in its outbox.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use crate::router::Grants;
use crate::stats::WorkerStats;
use crate::worker::{JoinAnswer, WorkerCore};
use crate::{ParticipantId, PeerEvent, SessionStats, SfuError};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// A request from the control plane to one worker.
pub(crate) enum Command {
    Join {
        room: String,
        who: ParticipantId,
        grants: Grants,
        offer: String,
        events: tokio::sync::mpsc::UnboundedSender<PeerEvent>,
        reply: oneshot::Sender<Result<JoinAnswer, SfuError>>,
    },
    Answer {
        who: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        who: ParticipantId,
    },
    /// Layer-choice inputs from the subscriber.
    Control {
        who: ParticipantId,
        control: Control,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// A snapshot of every session's counters.
    Stats {
        reply: oneshot::Sender<Vec<SessionStats>>,
    },
    Shutdown,
}

/// A subscriber's input to its layer choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Track `mid` is rendered `width` device pixels wide.
    VideoSize { mid: String, width: u32 },
    /// Pin track `mid` to a layer (`q`, `h`, `f`), or unpin with `None`.
    PinLayer { mid: String, layer: Option<String> },
    /// Cap what the subscriber receives, bits per second.
    MaxBitrate { bps: Option<u64> },
}

/// What the control plane keeps of a running worker.
pub(crate) struct WorkerHandle {
    pub tx: std::sync::mpsc::Sender<Command>,
    pub waker: Arc<Waker>,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<WorkerStats>,
    pub addr: SocketAddr,
}

impl WorkerHandle {
    pub fn send(&self, cmd: Command) -> Result<(), SfuError> {
        self.tx.send(cmd).map_err(|_| SfuError::WorkerGone)?;
        self.waker.wake().map_err(|_| SfuError::WorkerGone)
    }
}

/// Binds the worker's socket and starts its thread.
pub(crate) fn spawn(
    index: usize,
    bind: SocketAddr,
    advertise: std::net::IpAddr,
    cert: str0m::config::DtlsCert,
    bandwidth_estimation: bool,
) -> Result<WorkerHandle, SfuError> {
    let std_sock = std::net::UdpSocket::bind(bind).map_err(|e| SfuError::Bind(bind, e))?;
    std_sock
        .set_nonblocking(true)
        .map_err(|e| SfuError::Bind(bind, e))?;
    let port = std_sock
        .local_addr()
        .map_err(|e| SfuError::Bind(bind, e))?
        .port();
    let mut socket = UdpSocket::from_std(std_sock);
    let poll = Poll::new().map_err(|e| SfuError::Bind(bind, e))?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)
        .map_err(|e| SfuError::Bind(bind, e))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| SfuError::Bind(bind, e))?);
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = Arc::new(WorkerStats::default());
    let addr = SocketAddr::new(advertise, port);
    let mut core = WorkerCore::new(addr, cert, stats.clone());
    core.set_bandwidth_estimation(bandwidth_estimation);
    let thread = std::thread::Builder::new()
        .name(format!("gax-worker-{index}"))
        .spawn(move || run(index, core, socket, poll, rx))
        .map_err(|e| SfuError::Bind(bind, e))?;
    tracing::info!(worker = index, %addr, "media worker started");
    Ok(WorkerHandle {
        tx,
        waker,
        thread: Some(thread),
        stats,
        addr,
    })
}

fn run(
    index: usize,
    mut core: WorkerCore,
    socket: UdpSocket,
    mut poll: Poll,
    rx: Receiver<Command>,
) {
    let mut events = Events::with_capacity(16);
    let mut buf = vec![0u8; 2048];
    let stats = core.stats();
    loop {
        let timeout = core
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                tracing::error!("worker poll failed: {e}");
                return;
            }
        }
        // Commands first: they are rare and a join should not wait behind a burst.
        loop {
            match rx.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                    core.close_all(Instant::now());
                    flush(&mut core, &socket, &stats);
                    return;
                }
                Ok(cmd) => handle_command(&mut core, index, cmd),
                Err(TryRecvError::Empty) => break,
            }
            flush(&mut core, &socket, &stats);
        }
        // Edge-triggered: read until the socket is empty.
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    core.handle_datagram(Instant::now(), source, &buf[..n]);
                    flush(&mut core, &socket, &stats);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors (port unreachable) surface here on Linux; not fatal.
                    tracing::debug!("recv_from: {e}");
                    continue;
                }
            }
        }
        core.handle_timeouts(Instant::now());
        flush(&mut core, &socket, &stats);
    }
}

fn handle_command(core: &mut WorkerCore, index: usize, cmd: Command) {
    let now = Instant::now();
    match cmd {
        Command::Join {
            room,
            who,
            grants,
            offer,
            events,
            reply,
        } => {
            let _ = reply.send(core.join(now, &room, who, grants, &offer, events));
        }
        Command::Answer { who, sdp, reply } => {
            let _ = reply.send(core.answer(now, who, &sdp));
        }
        Command::Leave { who } => core.leave(now, who),
        Command::Stats { reply } => {
            let _ = reply.send(core.session_stats(index));
        }
        Command::Control {
            who,
            control,
            reply,
        } => {
            let result = match control {
                Control::VideoSize { mid, width } => core.set_video_size(who, &mid, width),
                Control::PinLayer { mid, layer } => core.pin_layer(who, &mid, layer.as_deref()),
                Control::MaxBitrate { bps } => core.set_max_bitrate(who, bps),
            };
            let _ = reply.send(result);
        }
        Command::Shutdown => {}
    }
}

fn flush(core: &mut WorkerCore, socket: &UdpSocket, stats: &WorkerStats) {
    for (to, data) in core.outbox_drain() {
        match socket.send_to(&data, to) {
            Ok(n) => {
                stats.packets_out.inc();
                stats.bytes_out.add(n as u64);
            }
            Err(e) => {
                stats.dropped_send.inc();
                tracing::trace!(%to, "send_to: {e}");
            }
        }
    }
}
