//! The thin I/O loop around a [`WorkerCore`]: one OS thread, one UDP socket, one mio poll.
//!
//! The loop sleeps until the socket is readable, a command arrives (a mio `Waker` rings), or
//! the earliest session deadline is due. It reads every waiting datagram, feeds the core, and
//! sends what the core put in its outbox.
//!
//! Between workers: packets relayed to this worker wait in rings ([`crate::relay`]) that the
//! loop drains on every turn. A worker that relays packets wakes the receiver only when the
//! receiver announced that it is going to sleep (its `sleeping` flag), so two busy workers
//! exchange packets without a syscall.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use crate::link::Link;
use crate::relay::{Inter, RelayLinks};
use crate::router::Grants;
use crate::stats::WorkerStats;
use crate::worker::{JoinAnswer, WorkerCore};
use crate::{EventSender, ParticipantId, SessionStats, SfuError};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// A request from the control plane to one worker.
pub(crate) enum Command {
    Join {
        room: String,
        who: ParticipantId,
        grants: Grants,
        /// A WHEP player of this participant (see `Worker::join`).
        follow: Option<crate::worker::Follow>,
        offer: String,
        events: EventSender,
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
    /// How to reach every worker of the mesh (sent once, first, by the control plane).
    Mesh(Vec<WorkerLink>),
    /// A control message from another worker.
    Inter {
        from: usize,
        msg: Inter,
    },
    Shutdown,
}

/// How one worker reaches another: its command channel, its waker and its sleeping flag.
#[derive(Clone)]
pub(crate) struct WorkerLink {
    tx: std::sync::mpsc::Sender<Command>,
    waker: Arc<Waker>,
    sleeping: Arc<AtomicBool>,
}

impl WorkerLink {
    fn send(&self, cmd: Command) -> Result<(), SfuError> {
        self.tx.send(cmd).map_err(|_| SfuError::WorkerGone)?;
        self.waker.wake().map_err(|_| SfuError::WorkerGone)
    }

    /// Packets were pushed into this worker's ring: ring its waker only if it sleeps (or is
    /// about to). The fence pairs with the one in the receiver's loop: either the receiver
    /// sees the packets before it sleeps, or we see its flag.
    fn nudge(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
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
    pub link: WorkerLink,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<WorkerStats>,
    pub addr: SocketAddr,
}

impl WorkerHandle {
    pub fn send(&self, cmd: Command) -> Result<(), SfuError> {
        self.link.send(cmd)
    }
}

/// Binds the worker's socket and starts its thread.
pub(crate) fn spawn(
    index: usize,
    bind: SocketAddr,
    advertise: std::net::IpAddr,
    cert: str0m::config::DtlsCert,
    bandwidth_estimation: bool,
    links: RelayLinks,
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
    let mut core = WorkerCore::new(addr, cert, stats.clone()).with_links(links);
    core.set_bandwidth_estimation(bandwidth_estimation);
    let sleeping = Arc::new(AtomicBool::new(false));
    let thread_stats = stats.clone();
    let link = WorkerLink {
        tx,
        waker,
        sleeping: sleeping.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("gax-worker-{index}"))
        .spawn(move || {
            Loop {
                index,
                core,
                socket,
                sleeping,
                mesh: Vec::new(),
                stats: thread_stats,
            }
            .run(poll, rx)
        })
        .map_err(|e| SfuError::Bind(bind, e))?;
    tracing::info!(worker = index, %addr, "media worker started");
    Ok(WorkerHandle {
        link,
        thread: Some(thread),
        stats,
        addr,
    })
}

/// Datagrams read between two looks at the rings from other workers.
const RELAY_POLL_EVERY: usize = 16;

/// One worker thread's state.
struct Loop {
    index: usize,
    core: WorkerCore,
    socket: UdpSocket,
    /// Set while this thread sleeps in `poll` (other workers then wake it for relayed packets).
    sleeping: Arc<AtomicBool>,
    /// Every worker of the mesh, by index (empty until the control plane sends it).
    mesh: Vec<WorkerLink>,
    stats: Arc<WorkerStats>,
}

impl Loop {
    fn run(mut self, mut poll: Poll, rx: Receiver<Command>) {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; 2048];
        loop {
            let mut timeout = self
                .core
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            // Announce the sleep, then look at the rings once more (see `WorkerLink::nudge`).
            self.sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.core.relay_pending() {
                timeout = Some(Duration::ZERO);
            }
            let polled = poll.poll(&mut events, timeout);
            self.sleeping.store(false, Ordering::Relaxed);
            if let Err(e) = polled {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!("worker poll failed: {e}");
                    return;
                }
            }
            // Commands first: they are rare and a join should not wait behind a burst.
            loop {
                match rx.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                        self.core.close_all(Instant::now());
                        self.flush();
                        return;
                    }
                    Ok(cmd) => self.handle_command(cmd),
                    Err(TryRecvError::Empty) => break,
                }
                self.flush();
            }
            // Edge-triggered: read until the socket is empty.
            let mut reads = 0usize;
            loop {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, source)) => {
                        self.core.handle_datagram(Instant::now(), source, &buf[..n]);
                        reads += 1;
                        if reads.is_multiple_of(RELAY_POLL_EVERY) {
                            self.core.handle_relays(Instant::now());
                        }
                        self.flush();
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
            self.core.handle_relays(Instant::now());
            self.flush();
            self.core.handle_timeouts(Instant::now());
            self.flush();
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        let now = Instant::now();
        let core = &mut self.core;
        match cmd {
            Command::Join {
                room,
                who,
                grants,
                follow,
                offer,
                events,
                reply,
            } => {
                let _ = reply.send(core.join(now, &room, who, grants, follow, &offer, events));
            }
            Command::Answer { who, sdp, reply } => {
                let _ = reply.send(core.answer(now, who, &sdp));
            }
            Command::Leave { who } => core.leave(now, who),
            Command::Stats { reply } => {
                let _ = reply.send(core.session_stats(self.index));
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
            Command::Mesh(mesh) => self.mesh = mesh,
            Command::Inter { from, msg } => core.handle_inter(now, Link::Worker(from), msg),
            Command::Shutdown => {}
        }
    }

    /// Sends what the core produced: datagrams to the socket, messages and wake-ups to other
    /// workers.
    fn flush(&mut self) {
        let stats = &self.stats;
        for (to, data) in self.core.outbox_drain() {
            match self.socket.send_to(&data, to) {
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
        for (Link::Worker(to), msg) in self.core.inter_drain() {
            if let Some(link) = self.mesh.get(to) {
                let _ = link.send(Command::Inter {
                    from: self.index,
                    msg,
                });
            }
        }
        let mut wakes = self.core.take_relay_wakes();
        while wakes != 0 {
            let to = wakes.trailing_zeros() as usize;
            wakes &= wakes - 1;
            if let Some(link) = self.mesh.get(to) {
                link.nudge();
            }
        }
    }
}
