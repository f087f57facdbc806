//! The in-memory room: building it (ICE, DTLS and negotiation for every client) and reaching
//! its parts (clients, worker cores, counters).

use super::*;

/// One publisher (a VP8 video track) and `N` subscribers of it on one [`WorkerCore`], all in
/// memory. See the [module docs](super).
pub struct InMemoryRoom {
    /// One core per worker; the publisher is on worker 0.
    pub(super) cores: Vec<WorkerCore>,
    pub(super) stats: Vec<Arc<WorkerStats>>,
    pub(super) now: Instant,
    /// `clients[0]` is the publisher, the rest are subscribers.
    pub(super) clients: Vec<Client>,
    pub(super) by_addr: HashMap<SocketAddr, usize>,
    /// Client datagrams waiting for the core (delivered by [`InMemoryRoom::settle`]).
    pub(super) to_core: VecDeque<(SocketAddr, Vec<u8>)>,
    pub(super) video_mid: Mid,
    pub(super) vp8_pt: Pt,
    /// Next publisher sequence number (extended, str0m tracks the rollover counter).
    pub(super) seq: u64,
    pub(super) picture_id: u16,
    /// The simulcast publisher's layers (empty for a single-stream publisher).
    pub(super) layers: Vec<PublisherLayer>,
    /// Per layer: a keyframe request reached the publisher and was not served yet.
    pub(super) keyframe_pending: Vec<bool>,
    /// STUN from the clients is dropped before the core ([`Self::withhold_client_stun`]).
    pub(super) withhold_stun: bool,
}

impl InMemoryRoom {
    /// Builds the room and connects everyone: the publisher joins with a sendonly VP8 m-line,
    /// then each subscriber joins (a recvonly audio m-line, so its offer is not empty) and
    /// answers the server offer that adds the publisher's video. Returns once every client and
    /// the server report `Connected` and every subscriber answered its server offer.
    pub fn new(subscribers: usize) -> Result<Self, Error> {
        Self::build(subscribers, &[], 1)
    }

    /// Like [`InMemoryRoom::new`] (or [`InMemoryRoom::with_simulcast`] when `rids` is not
    /// empty), with the room spread over `workers` workers: client `i` sits on worker
    /// `i % workers`, so the publisher is on worker 0 and subscriber `j` on `(j + 1) % workers`.
    pub fn spanning(subscribers: usize, rids: &[&str], workers: usize) -> Result<Self, Error> {
        if workers == 0 || workers > 16 || rids.len() > 3 {
            return Err("1 to 16 workers, 0 to 3 RIDs".into());
        }
        Self::build(subscribers, rids, workers)
    }

    /// Like [`InMemoryRoom::new`], but the publisher's sendonly VP8 m-line offers simulcast
    /// send layers with these RIDs, lowest first (e.g. `&["q", "h", "f"]`). Its packets are
    /// made with [`InMemoryRoom::publisher_frame_on`] / [`InMemoryRoom::publisher_packet_on`]
    /// or a whole frame of every layer with [`InMemoryRoom::simulcast_frame`]; each layer keeps
    /// its own counters (see [`PublisherLayer`]).
    pub fn with_simulcast(subscribers: usize, rids: &[&str]) -> Result<Self, Error> {
        if rids.is_empty() || rids.len() > 3 {
            return Err("simulcast needs 1 to 3 RIDs".into());
        }
        Self::build(subscribers, rids, 1)
    }

    pub(super) fn build(subscribers: usize, rids: &[&str], workers: usize) -> Result<Self, Error> {
        init_crypto();
        let now = Instant::now();
        let cert = new_certificate()?;
        let mut cores = Vec::with_capacity(workers);
        let mut stats = Vec::with_capacity(workers);
        for (w, links) in mesh(workers, RELAY_CAPACITY).into_iter().enumerate() {
            let s = Arc::new(WorkerStats::default());
            cores.push(WorkerCore::new(worker_addr(w), cert.clone(), s.clone()).with_links(links));
            stats.push(s);
        }
        let mut room = InMemoryRoom {
            cores,
            stats,
            now,
            clients: Vec::with_capacity(subscribers + 1),
            by_addr: HashMap::new(),
            to_core: VecDeque::new(),
            video_mid: Mid::from("0"),
            vp8_pt: Pt::from(0),
            seq: 1,
            picture_id: 0,
            layers: rids
                .iter()
                .enumerate()
                .map(|(i, rid)| PublisherLayer::new(rid, i, rids.len()))
                .collect(),
            keyframe_pending: vec![false; rids.len()],
            withhold_stun: false,
        };

        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        room.video_mid = room.join(MediaKind::Video, Direction::SendOnly, simulcast)?;
        let publisher = &room.clients[0].rtc;
        let remote = publisher
            .media(room.video_mid)
            .ok_or("publisher has no video media")?
            .remote_pts();
        room.vp8_pt = publisher
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8 && remote.contains(&p.pt()))
            .ok_or("VP8 was not negotiated for the publisher")?
            .pt();

        for _ in 0..subscribers {
            room.join(MediaKind::Audio, Direction::RecvOnly, None)?;
        }

        let deadline = room.now + CONNECT_TIMEOUT;
        room.settle()?;
        while !room.ready() {
            if room.now >= deadline {
                return Err("clients did not connect within 30 s (simulated)".into());
            }
            room.advance(Duration::from_millis(10))?;
        }
        Ok(room)
    }

    /// One client makes an offer with one m-line and joins; returns the mid of that m-line.
    pub(super) fn join(
        &mut self,
        kind: MediaKind,
        dir: Direction,
        simulcast: Option<Simulcast>,
    ) -> Result<Mid, Error> {
        let index = self.clients.len();
        let worker = index % self.cores.len();
        // Ample: the harness drains every client's events each round.
        let (tx, rx) = peer_events(4096);
        let mut client = Client::new(index, worker, self.now, rx)?;
        let mut api = client.rtc.sdp_api();
        let mid = api.add_media(kind, dir, None, None, simulcast);
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        let joined = self.cores[worker].join(
            self.now,
            ROOM,
            client.id,
            Grants::default(),
            None,
            &offer.to_sdp_string(),
            tx,
        )?;
        client
            .rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&joined.answer)?)?;
        self.by_addr.insert(client.addr, index);
        self.clients.push(client);
        self.pump_inter()?;
        Ok(mid)
    }

    pub(super) fn ready(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.connected && c.server_connected)
            && self.clients[1..].iter().all(|c| c.offers_answered > 0)
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.clients.len() - 1
    }

    /// The publisher's address.
    pub fn publisher_addr(&self) -> SocketAddr {
        self.clients[0].addr
    }

    /// The subscribers' addresses, in join order.
    pub fn subscriber_addrs(&self) -> Vec<SocketAddr> {
        self.clients[1..].iter().map(|c| c.addr).collect()
    }

    /// The subscriber clients, in join order.
    pub fn subscriber_clients(&self) -> &[Client] {
        &self.clients[1..]
    }

    /// Subscriber `i` (in join order).
    pub fn subscriber(&self, i: usize) -> &Client {
        &self.clients[1 + i]
    }

    /// Subscriber `i`, mutably (e.g. to clear what it recorded).
    pub fn subscriber_mut(&mut self, i: usize) -> &mut Client {
        &mut self.clients[1 + i]
    }

    /// The publisher client.
    pub fn publisher(&self) -> &Client {
        &self.clients[0]
    }

    /// The simulcast publisher's layers, lowest first (empty for a single-stream publisher).
    pub fn publisher_layers(&self) -> &[PublisherLayer] {
        &self.layers
    }

    /// Worker 0's counters (the publisher's worker; the only one unless [`Self::spanning`]).
    pub fn stats(&self) -> &WorkerStats {
        &self.stats[0]
    }

    /// Worker `w`'s counters.
    pub fn stats_of(&self, w: usize) -> &WorkerStats {
        &self.stats[w]
    }

    /// One counter summed over every worker, e.g. `room.total(|s| &s.rtp_forwarded)`.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &crate::stats::Counter) -> u64 {
        self.stats.iter().map(|s| counter(s).get()).sum()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.cores.len()
    }

    /// The publisher's core (worker 0): the one under test in a single-worker room.
    pub fn core_mut(&mut self) -> &mut WorkerCore {
        &mut self.cores[0]
    }

    /// Worker `w`'s core.
    pub fn core_of(&mut self, w: usize) -> &mut WorkerCore {
        &mut self.cores[w]
    }

    /// The core subscriber `i` is placed on.
    pub fn subscriber_core(&mut self, i: usize) -> &mut WorkerCore {
        let w = self.clients[1 + i].worker;
        &mut self.cores[w]
    }

    /// Carries the workers' control messages to their destinations until none is left.
    pub(super) fn pump_inter(&mut self) -> Result<(), Error> {
        let now = self.now;
        for _ in 0..100 {
            let mut moved = false;
            for w in 0..self.cores.len() {
                let msgs: Vec<(Link, Inter)> = self.cores[w].inter_drain().collect();
                for (Link::Worker(to), msg) in msgs {
                    moved = true;
                    self.cores
                        .get_mut(to)
                        .ok_or("a control message to an unknown worker")?
                        .handle_inter(now, Link::Worker(w), msg);
                }
            }
            if !moved {
                return Ok(());
            }
        }
        Err("workers kept messaging each other".into())
    }

    /// The other workers take what worker 0 relayed to them and run their timers, as their
    /// threads would after a wake-up. Control messages are carried outside this (they are
    /// rare: keyframe requests, tracks coming and going), in [`InMemoryRoom::settle`].
    #[inline]
    pub(super) fn run_relays(&mut self, now: Instant) {
        for core in self.cores[1..].iter_mut() {
            if core.relay_pending() {
                core.handle_relays(now);
                core.handle_timeouts(now);
            }
        }
    }
}
