//! The control plane: the [`Sfu`] handle that signaling talks to.
//!
//! It starts the workers and the rings between them, seats each participant on a worker
//! through the call-room directory ([`crate::directory`]: the least loaded worker; among
//! equals, one that already hosts the room), and turns async calls into commands for that
//! worker's thread. Media never passes through here: a room whose members
//! sit on several workers is stitched together by the workers themselves ([`crate::relay`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::directory::RoomDirectory;
use crate::relay::{mesh, MAX_WORKERS, RELAY_CAPACITY};
use crate::router::Grants;
use crate::session::{init_crypto, new_certificate};
use crate::stats::WorkerStats;
use crate::worker::Follow;
use crate::worker_thread::{spawn, Command, Control, WorkerHandle};
use crate::{EventSender, ParticipantId, SessionStats, SfuError};

/// How the media plane is laid out.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Worker threads, each with its own UDP socket. 0 = one per available core.
    pub workers: usize,
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address put in ICE host candidates (what browsers send media to).
    pub advertise_ip: IpAddr,
    /// Worker i listens on `port_base + i`; 0 = an ephemeral port per worker.
    pub port_base: u16,
    /// Estimate each subscriber's bandwidth (TWCC, with probing) and choose layers within it.
    pub bandwidth_estimation: bool,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            workers: 0,
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            advertise_ip: IpAddr::from([127, 0, 0, 1]),
            port_base: 0,
            bandwidth_estimation: true,
        }
    }
}

/// A participant placed on a worker; returned by [`Sfu::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub participant: ParticipantId,
    worker: usize,
}

/// The result of a join.
#[derive(Debug)]
pub struct Joined {
    pub placement: Placement,
    /// Our SDP answer to the participant's offer.
    pub answer: String,
}

/// Handle to the running media plane. Cheap to share behind an `Arc`.
pub struct Sfu {
    workers: Vec<WorkerHandle>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    rooms: RoomDirectory,
    next_id: AtomicU64,
}

impl Sfu {
    /// Starts the workers.
    pub fn start(config: &SfuConfig) -> Result<Sfu, SfuError> {
        init_crypto();
        let n = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        if n > MAX_WORKERS {
            return Err(SfuError::Config("at most 64 media workers"));
        }
        let cert = new_certificate()?;
        let mut workers = Vec::with_capacity(n);
        for (i, links) in mesh(n, RELAY_CAPACITY).into_iter().enumerate() {
            let port = if config.port_base == 0 {
                0
            } else {
                config
                    .port_base
                    .checked_add(i as u16)
                    .ok_or(SfuError::Config("media port range overflows 65535"))?
            };
            workers.push(spawn(
                i,
                SocketAddr::new(config.bind_ip, port),
                config.advertise_ip,
                cert.clone(),
                config.bandwidth_estimation,
                links,
            )?);
        }
        let links: Vec<_> = workers.iter().map(|w| w.link.clone()).collect();
        for w in &workers {
            w.send(Command::Mesh(links.clone()))?;
        }
        let threads = workers.iter_mut().filter_map(|w| w.thread.take()).collect();
        Ok(Sfu {
            rooms: RoomDirectory::new(workers.len()),
            workers,
            threads: Mutex::new(threads),
            next_id: AtomicU64::new(1),
        })
    }

    /// The UDP addresses the workers advertise.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addr).collect()
    }

    /// Counters of every worker, in worker order.
    pub fn worker_stats(&self) -> Vec<&WorkerStats> {
        self.workers.iter().map(|w| &*w.stats).collect()
    }

    /// The call-room directory: who is in which room, on which worker.
    pub fn rooms(&self) -> &RoomDirectory {
        &self.rooms
    }

    /// Number of participants on each worker (placement's view).
    pub fn worker_loads(&self) -> Vec<usize> {
        self.rooms.worker_loads()
    }

    /// Joins `room` with an SDP offer. Events for this participant (server offers, connection
    /// state) arrive on `events`; the first server offer follows the answer returned here.
    pub async fn join(
        &self,
        room: &str,
        grants: Grants,
        offer: String,
        events: EventSender,
    ) -> Result<Joined, SfuError> {
        self.join_as(room, grants, None, offer, events).await
    }

    /// Joins `room` as a WHEP player of `publisher`: its offer's `recvonly` m-lines receive
    /// the publisher's tracks (one per m-line of the same kind, also tracks published later
    /// while a matching m-line is free), with no renegotiation. `layer` pins the simulcast
    /// layer of its video (0 = q, 1 = h, 2 = f); `None` leaves it to the bandwidth estimate.
    pub async fn join_player(
        &self,
        room: &str,
        publisher: ParticipantId,
        layer: Option<u8>,
        offer: String,
        events: EventSender,
    ) -> Result<Joined, SfuError> {
        let grants = Grants {
            publish: false,
            subscribe: true,
        };
        let follow = Follow { publisher, layer };
        self.join_as(room, grants, Some(follow), offer, events)
            .await
    }

    async fn join_as(
        &self,
        room: &str,
        grants: Grants,
        follow: Option<Follow>,
        offer: String,
        events: EventSender,
    ) -> Result<Joined, SfuError> {
        let participant = ParticipantId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let worker = self.rooms.seat(room, participant, events.clone());
        let (reply, rx) = oneshot::channel();
        let sent = self.workers[worker].send(Command::Join {
            room: room.to_owned(),
            who: participant,
            grants,
            follow,
            offer,
            events,
            reply,
        });
        let result = match sent {
            Ok(()) => rx.await.unwrap_or(Err(SfuError::WorkerGone)),
            Err(e) => Err(e),
        };
        match result {
            Ok(a) => Ok(Joined {
                placement: Placement {
                    participant,
                    worker,
                },
                answer: a.answer,
            }),
            Err(e) => {
                self.rooms.unseat(room, participant);
                Err(e)
            }
        }
    }

    /// Delivers the participant's answer to our last offer.
    pub async fn answer(&self, who: Placement, sdp: String) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.workers[who.worker].send(Command::Answer {
            who: who.participant,
            sdp,
            reply,
        })?;
        rx.await.unwrap_or(Err(SfuError::WorkerGone))
    }

    /// Passes a subscriber's layer-choice input to its worker.
    pub async fn control(&self, who: Placement, control: Control) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.workers[who.worker].send(Command::Control {
            who: who.participant,
            control,
            reply,
        })?;
        rx.await.unwrap_or(Err(SfuError::WorkerGone))
    }

    /// Counters of every session on every worker (the control API behind `/metrics`).
    pub async fn session_stats(&self) -> Vec<SessionStats> {
        let mut out = Vec::new();
        for w in &self.workers {
            let (reply, rx) = oneshot::channel();
            if w.send(Command::Stats { reply }).is_ok() {
                if let Ok(mut s) = rx.await {
                    out.append(&mut s);
                }
            }
        }
        out
    }

    /// Removes the participant and its tracks from the media plane and the room; the room's
    /// other members are told (see [`RoomDirectory`]).
    pub fn leave(&self, who: Placement, room: &str) {
        let _ = self.workers[who.worker].send(Command::Leave {
            who: who.participant,
        });
        self.rooms.unseat(room, who.participant);
    }

    /// Stops every worker, closing all sessions. Idempotent.
    pub fn shutdown(&self) {
        for w in &self.workers {
            let _ = w.send(Command::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.shutdown();
    }
}
