//! Traffic through the in-memory room: the publisher's packets and frames, the core's work on
//! them, delivery to the clients, and the simulated clock.

use super::*;

impl InMemoryRoom {
    /// The RTP payload of the next publisher packet: a VP8 payload descriptor (RFC 7741, with a
    /// 15-bit picture id), a VP8 inter-frame header on the first packet of each frame, then
    /// filler up to [`PAYLOAD_SIZE`] bytes.
    pub(super) fn vp8_payload(&self, first_of_frame: bool) -> Vec<u8> {
        let mut p = vec![0u8; PAYLOAD_SIZE];
        p[0] = if first_of_frame { 0x90 } else { 0x80 }; // X, S (start of partition 0)
        p[1] = 0x80; // I: picture id present
        p[2] = 0x80 | ((self.picture_id >> 8) as u8 & 0x7f); // M: 15-bit picture id
        p[3] = self.picture_id as u8;
        if first_of_frame {
            p[4] = 0x11; // show_frame, P = 1 (inter frame)
        }
        p
    }

    /// Advances the clock by [`PACKET_INTERVAL`], has the publisher write one VP8 RTP packet
    /// and returns its SRTP datagram, to be fed with [`InMemoryRoom::forward`]. Other datagrams
    /// the publisher sends meanwhile (STUN, RTCP) wait for [`InMemoryRoom::settle`].
    pub fn publisher_packet(&mut self) -> Result<PublisherPacket, Error> {
        self.now += PACKET_INTERVAL;
        let now = self.now;
        let seq = self.seq;
        self.seq += 1;
        let index_in_frame = (seq - 1) % PACKETS_PER_FRAME;
        let frame = (seq - 1) / PACKETS_PER_FRAME;
        self.picture_id = (frame & 0x7fff) as u16;
        let payload = self.vp8_payload(index_in_frame == 0);
        // 90 kHz clock, one frame every PACKETS_PER_FRAME packets.
        let frame_ticks = PACKET_INTERVAL.as_micros() as u64 * PACKETS_PER_FRAME * 90 / 1000;
        let rtp_time = (frame * frame_ticks) as u32;
        let marker = index_in_frame == PACKETS_PER_FRAME - 1;
        let mid = self.video_mid;
        let pt = self.vp8_pt;
        let publisher = &mut self.clients[0];
        publisher.rtc.handle_input(Input::Timeout(now))?;
        publisher
            .rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .ok_or("the publisher has no send stream")?
            .write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), rtp_time, now, payload)
                    .marker(marker)
                    .nackable(true),
            );
        let datagram = publisher
            .drive(now, &mut self.to_core, true)?
            .ok_or("the publisher sent no RTP")?;
        Ok(PublisherPacket { at: now, datagram })
    }

    /// The RTP payload of one packet of a simulcast layer's frame: a VP8 payload descriptor
    /// with X=1, I=1 (15-bit picture id), L=1 and T=1 (TL0PICIDX and TID present); on the
    /// frame's first packet (S=1) a VP8 frame header: for a keyframe the 10-byte one with the
    /// start code 9d 01 2a and the layer's width and height, else an inter-frame tag. Zero
    /// filler, and the layer tag in the last byte.
    pub(super) fn simulcast_payload(
        layer: &PublisherLayer,
        index: usize,
        first: bool,
        keyframe: bool,
        tid: u8,
    ) -> Vec<u8> {
        let mut p = vec![0u8; layer.payload_size.max(20)];
        let pid = layer.next_picture_id;
        p[0] = if first { 0x90 } else { 0x80 }; // X, S (start of partition 0)
        p[1] = 0xe0; // I, L, T
        p[2] = 0x80 | ((pid >> 8) as u8 & 0x7f); // M: 15-bit picture id
        p[3] = pid as u8;
        p[4] = layer.tl0_pic_idx;
        p[5] = (tid << 6) | if tid == 0 { 0x20 } else { 0 }; // TID, Y (layer sync on TID 0)
        if first && keyframe {
            // Frame tag (P=0: keyframe, show_frame), start code, 14-bit width and height.
            p[6..9].copy_from_slice(&[0x50, 0x2f, 0x01]);
            p[9..12].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            p[12..14].copy_from_slice(&layer.width.to_le_bytes());
            p[14..16].copy_from_slice(&layer.height.to_le_bytes());
        } else if first {
            p[6] = 0x11; // show_frame, P = 1 (inter frame)
        }
        let last = p.len() - 1;
        p[last] = LAYER_TAG | index as u8;
        p
    }

    /// Has the simulcast publisher write one frame of `packets` packets on layer `layer`
    /// (index into its RIDs) at the current simulated time, a keyframe if `keyframe`, and
    /// returns the SRTP datagrams to feed with [`InMemoryRoom::forward`]. The clock does not
    /// move: call [`InMemoryRoom::run_for`] between frames (or use
    /// [`InMemoryRoom::simulcast_frame`]). The layer's sequence numbers count up by one per
    /// packet; its timestamp by [`FRAME_TICKS`], picture id by one (mod 2^15) per frame; the
    /// marker bit is on the frame's last packet.
    pub fn publisher_frame_on(
        &mut self,
        layer: usize,
        keyframe: bool,
        packets: usize,
    ) -> Result<Vec<PublisherPacket>, Error> {
        let now = self.now;
        let mid = self.video_mid;
        let pt = self.vp8_pt;
        let l = self
            .layers
            .get_mut(layer)
            .ok_or("no such simulcast layer (or the publisher does not simulcast)")?;
        // A keyframe is TID 0 and restarts the T0 T1 T0 T1 pattern.
        let keyframe = keyframe || l.since_keyframe.is_none();
        let since = if keyframe {
            0
        } else {
            l.since_keyframe.unwrap_or(0)
        };
        let tid = (since % 2) as u8;
        if tid == 0 && l.frames > 0 {
            l.tl0_pic_idx = l.tl0_pic_idx.wrapping_add(1);
        }
        let packets = packets.max(1);
        let rid = l.rid;
        let timestamp = l.next_timestamp;
        let mut writes = Vec::with_capacity(packets);
        for k in 0..packets {
            let payload = Self::simulcast_payload(l, layer, k == 0, keyframe, tid);
            writes.push((l.next_seq, k + 1 == packets, payload));
            l.next_seq += 1;
        }
        l.since_keyframe = Some(since + 1);
        l.frames += 1;
        l.keyframes += u64::from(keyframe);
        l.next_timestamp = l.next_timestamp.wrapping_add(FRAME_TICKS);
        l.next_picture_id = (l.next_picture_id + 1) & 0x7fff;

        let publisher = &mut self.clients[0];
        publisher.rtc.handle_input(Input::Timeout(now))?;
        let mut out = Vec::with_capacity(packets);
        for (seq, marker, payload) in writes {
            publisher
                .rtc
                .direct_api()
                .stream_tx_by_mid(mid, Some(rid))
                .ok_or("the publisher has no send stream for that RID")?
                .write_rtp(
                    RtpWrite::new(pt, SeqNo::from(seq), timestamp, now, payload)
                        .marker(marker)
                        .nackable(true),
                );
            let datagram = publisher
                .drive(now, &mut self.to_core, true)?
                .ok_or("the publisher sent no RTP")?;
            out.push(PublisherPacket { at: now, datagram });
        }
        Ok(out)
    }

    /// One simulcast packet: a frame of a single packet on `layer` (see
    /// [`InMemoryRoom::publisher_frame_on`]).
    pub fn publisher_packet_on(
        &mut self,
        layer: usize,
        keyframe: bool,
    ) -> Result<PublisherPacket, Error> {
        let mut v = self.publisher_frame_on(layer, keyframe, 1)?;
        v.pop().ok_or_else(|| "no packet".into())
    }

    /// True (once) if the publisher received a keyframe request (PLI/FIR) for `layer` (or for
    /// its whole track) that was not consumed yet.
    pub fn take_keyframe_request(&mut self, layer: usize) -> bool {
        for rid in self.clients[0].keyframe_requests.drain(..) {
            for (l, pending) in self.layers.iter().zip(self.keyframe_pending.iter_mut()) {
                if rid.is_none() || rid == Some(l.rid) {
                    *pending = true;
                }
            }
        }
        self.keyframe_pending
            .get_mut(layer)
            .is_some_and(std::mem::take)
    }

    /// One frame of a browser-like simulcast publisher: moves the clock by [`FRAME_INTERVAL`]
    /// ([`InMemoryRoom::run_for`]), then for each layer from the lowest, one frame of
    /// `packets[layer]` packets (1 if missing), a keyframe on the layer's first frame or when
    /// the publisher received a keyframe request for it; each packet is forwarded by the core
    /// and its output delivered to the clients at once. Returns the number of media RTP
    /// datagrams the core produced meanwhile (padding not counted).
    pub fn simulcast_frame(&mut self, packets: &[usize]) -> Result<usize, Error> {
        self.run_for(FRAME_INTERVAL)?;
        let mut rtp = 0;
        for layer in 0..self.layers.len() {
            let keyframe = self.take_keyframe_request(layer);
            let n = packets.get(layer).copied().unwrap_or(1);
            for p in self.publisher_frame_on(layer, keyframe, n)? {
                let out = self.forward_collect(&p);
                rtp += out.iter().filter(|(_, d)| is_media_rtp(d)).count();
                self.deliver(out)?;
            }
        }
        Ok(rtp)
    }

    /// The measured operation: the core receives one publisher datagram (at `packet.at`),
    /// forwards it, runs its due timers, and the outbox is drained and dropped. Returns the
    /// number of datagrams the core produced (N for N subscribers, plus the odd RTCP).
    #[inline]
    pub fn forward(&mut self, packet: &PublisherPacket) -> usize {
        self.server_work(packet);
        self.cores
            .iter_mut()
            .map(|c| c.outbox_drain().count())
            .sum()
    }

    /// The server's whole work for one publisher packet, and nothing else: the publisher's
    /// worker receives, decrypts and fans it out (relaying it to the other workers) and runs
    /// its timers; every other worker that got it runs its fan-out and timers. The datagrams
    /// stay in the workers' outboxes ([`InMemoryRoom::take_output`]).
    #[inline]
    pub fn server_work(&mut self, packet: &PublisherPacket) {
        let from = self.clients[0].addr;
        self.cores[0].handle_datagram(packet.at, from, &packet.datagram);
        self.cores[0].handle_timeouts(packet.at);
        self.run_relays(packet.at);
    }

    /// Every datagram waiting in the workers' outboxes, as (destination, bytes).
    pub fn take_output(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        self.output_into(&mut out);
        out
    }

    /// Moves every datagram waiting in the workers' outboxes to the end of `out`.
    #[inline]
    pub fn output_into(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        for c in &mut self.cores {
            out.extend(c.outbox_drain());
        }
    }

    /// Like [`InMemoryRoom::forward`], but returns the core's datagrams as
    /// (destination, bytes) instead of dropping them.
    pub fn forward_collect(&mut self, packet: &PublisherPacket) -> Vec<(SocketAddr, Vec<u8>)> {
        self.server_work(packet);
        self.take_output()
    }

    /// Hands datagrams from the core to the clients they are addressed to (at the current
    /// time), and lets the clients process them.
    pub fn deliver(&mut self, datagrams: Vec<(SocketAddr, Vec<u8>)>) -> Result<(), Error> {
        let now = self.now;
        for (to, data) in datagrams {
            let Some(&i) = self.by_addr.get(&to) else {
                return Err(format!("the core sent a datagram to unknown address {to}").into());
            };
            self.clients[i].receive(now, &data)?;
        }
        for i in 0..self.clients.len() {
            self.clients[i].drive(now, &mut self.to_core, false)?;
            self.server_events(i)?;
        }
        Ok(())
    }

    /// From now on no client's STUN reaches the core: the clients stand for peers (webrtc-rs,
    /// pion) that send no ICE binding request once media flows both ways. The clients still
    /// send keepalives and never give up on them; only the core stops hearing them.
    pub fn withhold_client_stun(&mut self) {
        self.withhold_stun = true;
    }

    /// Subscriber `i` vanishes (its network is gone): nothing more passes between it and the
    /// core and it stops running. The core's `PeerEvent::Closed` for it is recorded in
    /// [`Client::closed_by_server`] instead of failing the room.
    pub fn silence(&mut self, i: usize) {
        self.clients[1 + i].silent = true;
    }

    /// Moves the clock forward by `dt`, then [`InMemoryRoom::settle`]s.
    pub fn advance(&mut self, dt: Duration) -> Result<(), Error> {
        self.now += dt;
        self.settle()
    }

    /// Moves the clock forward by `dt` like a real event loop would: it stops at every
    /// deadline of the core on the way (at least [`MIN_STEP`] apart) and
    /// [`InMemoryRoom::settle`]s there, so the core's pacer and timers run on time instead of
    /// in one burst at the end.
    pub fn run_for(&mut self, dt: Duration) -> Result<(), Error> {
        let end = self.now + dt;
        while self.now < end {
            let next = self
                .cores
                .iter_mut()
                .filter_map(|c| c.next_deadline())
                .min();
            let step = match next {
                Some(d) if d < end => d.max(self.now + MIN_STEP).min(end),
                _ => end,
            };
            self.now = step;
            self.settle()?;
        }
        Ok(())
    }

    /// Runs everyone's timers at the current time and shuttles datagrams between the clients
    /// and the core until nobody has anything left to send; server offers are answered on the
    /// way. This is the client side and the background (STUN, RTCP, DTLS) of the room, not the
    /// hot path: benches call it outside their timed region.
    pub fn settle(&mut self) -> Result<(), Error> {
        let now = self.now;
        for c in self.clients.iter_mut().filter(|c| !c.silent) {
            c.rtc.handle_input(Input::Timeout(now))?;
        }
        for core in &mut self.cores {
            core.handle_timeouts(now);
        }
        for _ in 0..1000 {
            let mut moved = 0;
            for i in 0..self.clients.len() {
                self.clients[i].drive(now, &mut self.to_core, false)?;
                self.server_events(i)?;
            }
            while let Some((from, data)) = self.to_core.pop_front() {
                let client = self.by_addr.get(&from).map(|i| &self.clients[*i]);
                if client.is_some_and(|c| c.silent) || (self.withhold_stun && is_stun(&data)) {
                    continue;
                }
                let w = client.map_or(0, |c| c.worker);
                self.cores[w].handle_datagram(now, from, &data);
                moved += 1;
            }
            self.pump_inter()?;
            let mut out = Vec::new();
            for core in &mut self.cores {
                if core.relay_pending() {
                    core.handle_relays(now);
                    moved += 1;
                }
                core.handle_timeouts(now);
                out.extend(core.outbox_drain());
            }
            self.pump_inter()?;
            moved += out.len();
            for (to, data) in out {
                let Some(&i) = self.by_addr.get(&to) else {
                    return Err(format!("the core sent a datagram to unknown address {to}").into());
                };
                self.clients[i].receive(now, &data)?;
            }
            if moved == 0 {
                return Ok(());
            }
        }
        Err("the room did not settle after 1000 rounds".into())
    }

    /// Handles what the server told client `i`: answers offers, notes connection.
    pub(super) fn server_events(&mut self, i: usize) -> Result<(), Error> {
        let now = self.now;
        while let Some(ev) = self.clients[i].events.try_recv()? {
            let c = &mut self.clients[i];
            match ev {
                PeerEvent::Offer { sdp, added, .. } => {
                    c.tracks.extend(added);
                    let answer = c
                        .rtc
                        .sdp_api()
                        .accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                    let (id, w) = (c.id, c.worker);
                    c.offers_answered += 1;
                    self.cores[w].answer(now, id, &answer.to_sdp_string())?;
                    self.pump_inter()?;
                }
                PeerEvent::Connected => c.server_connected = true,
                PeerEvent::LayerSwitched {
                    mid,
                    layer,
                    reason,
                    width,
                } => c.layer_switches.push(LayerSwitch {
                    mid,
                    layer,
                    reason,
                    width,
                    received_before: c.received.len(),
                }),
                // The publisher's own track is routed: signaling news, nothing to do here.
                PeerEvent::Published(_) | PeerEvent::ActiveSpeaker(_) | PeerEvent::Room(_) => {}
                PeerEvent::Closed if c.silent => c.closed_by_server = true,
                PeerEvent::Closed => return Err(format!("the server closed {}", c.id).into()),
            }
        }
        Ok(())
    }
}
