//! SDP negotiation: the peer's first offer, the server offers that add and stop tracks one
//! exchange at a time, and their answers. A single unbundled m-line is taken as a bundle of one.

use super::*;

impl Session {
    /// Accepts the peer's offer and returns our answer as SDP text.
    ///
    /// An offer of one m-line without a BUNDLE group (GStreamer's webrtcbin with
    /// `bundle-policy=none`, as simple-whip-client publishes a single track) is taken as a
    /// bundle of one, which is what it is on the wire; the answer then carries no group either
    /// (RFC 9143 section 7.3: no BUNDLE in an answer to an offer without one).
    pub fn accept_offer(&mut self, offer_sdp: &str) -> Result<String, SessionError> {
        let bundled = bundle_single_section(offer_sdp)?;
        let offer = SdpOffer::from_sdp_string(bundled.as_deref().unwrap_or(offer_sdp))
            .map_err(|e| sdp_error(offer_sdp, e))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SessionError::Refused(e.to_string()))?
            .to_sdp_string();
        Ok(match bundled {
            Some(_) => without_bundle_group(&answer),
            None => answer,
        })
    }

    /// Queues a track to send to this peer. It is offered with the next
    /// [`Session::create_offer`], which tells the mid it got.
    pub fn queue_outgoing(&mut self, track: OutgoingTrack) {
        self.queued_add.push(track);
    }

    /// Drops a queued track that was not offered yet. Returns true if it was still queued.
    pub fn cancel_outgoing(&mut self, tag: u64) -> bool {
        let before = self.queued_add.len();
        self.queued_add.retain(|t| t.tag != tag);
        before != self.queued_add.len()
    }

    /// Queues the end of a track we send (its m-line is stopped in the next offer).
    pub fn queue_stop(&mut self, media: MediaId) {
        self.queued_stop.push(media);
    }

    /// True when changes wait for an offer and no offer is in flight.
    pub fn wants_offer(&self) -> bool {
        self.pending.is_none() && (!self.queued_add.is_empty() || !self.queued_stop.is_empty())
    }

    /// Builds one server offer from everything queued. Returns the SDP, every added track with
    /// the mid it got (in the order queued), and the mids stopped.
    #[allow(clippy::type_complexity)]
    pub fn create_offer(
        &mut self,
    ) -> Option<(String, Vec<(MediaId, OutgoingTrack)>, Vec<MediaId>)> {
        if !self.wants_offer() {
            return None;
        }
        let adds = std::mem::take(&mut self.queued_add);
        let stops = std::mem::take(&mut self.queued_stop);
        let mut api = self.rtc.sdp_api();
        let mut added = Vec::with_capacity(adds.len());
        for track in adds {
            let mid = api.add_media(
                track.kind.to_str0m(),
                Direction::SendOnly,
                Some(track.stream_id.clone()),
                Some(track.track_id.clone()),
                None,
            );
            added.push((MediaId(mid), track));
        }
        for media in &stops {
            api.stop_media(media.0);
        }
        let (offer, pending) = api.apply()?;
        self.local_mids.extend(added.iter().map(|(m, _)| *m));
        self.pending = Some(PendingOffer { pending });
        Some((offer.to_sdp_string(), added, stops))
    }

    /// Applies the peer's answer to our last offer.
    pub fn accept_answer(&mut self, answer_sdp: &str) -> Result<(), SessionError> {
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| sdp_error(answer_sdp, e))?;
        let Some(p) = self.pending.take() else {
            return Err(SessionError::NoPendingOffer);
        };
        self.rtc
            .sdp_api()
            .accept_answer(p.pending, answer)
            .map_err(|e| SessionError::Refused(e.to_string()))
    }
}

/// What was wrong with SDP that str0m could not parse, in words a client can act on. str0m's
/// own parse error is its parser's debug output (with heap addresses in it), so it is never
/// shown; its consistency errors are plain sentences and are kept.
fn sdp_error(sdp: &str, e: str0m::error::SdpError) -> SessionError {
    use str0m::error::SdpError;
    let SdpError::ParseError(_) = e else {
        return SessionError::BadSdp(e.to_string());
    };
    if !sdp.starts_with("v=0") {
        return SessionError::BadSdp(
            "not an SDP session description (it must start with v=0)".into(),
        );
    }
    let malformed = sdp.lines().enumerate().find(|(_, l)| {
        let b = l.as_bytes();
        !(b.len() >= 2 && b[0].is_ascii_lowercase() && b[1] == b'=')
    });
    SessionError::BadSdp(match malformed {
        Some((n, _)) => format!("SDP line {} is not of the form <letter>=<value>", n + 1),
        None => "the SDP could not be parsed: a line has a value that is not valid SDP".into(),
    })
}

/// For an offer without a BUNDLE group: the same offer with `a=group:BUNDLE <mid>` added when
/// it has exactly one m-line (str0m runs one transport per peer and wants the group), `None`
/// when the offer already has a group (or has no m-line: str0m says what is wrong with it). An
/// offer of several m-lines that are not bundled is refused: GAX has one transport per peer.
fn bundle_single_section(sdp: &str) -> Result<Option<String>, SessionError> {
    let mut lines = sdp.lines();
    if lines.clone().any(|l| l.starts_with("a=group:BUNDLE")) {
        return Ok(None);
    }
    match lines.clone().filter(|l| l.starts_with("m=")).count() {
        0 => return Ok(None),
        1 => {}
        _ => {
            return Err(SessionError::BadSdp(
                "an offer of several m-lines must bundle them (a=group:BUNDLE): GAX runs one \
                 transport per peer"
                    .into(),
            ))
        }
    }
    let Some(mid) = lines.find_map(|l| l.strip_prefix("a=mid:")) else {
        return Ok(None);
    };
    let mut out = String::with_capacity(sdp.len() + 32);
    let mut added = false;
    for line in sdp.lines() {
        if !added && line.starts_with("m=") {
            out.push_str("a=group:BUNDLE ");
            out.push_str(mid.trim());
            out.push_str("\r\n");
            added = true;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(Some(out))
}

/// The SDP without its `a=group:BUNDLE` line.
fn without_bundle_group(sdp: &str) -> String {
    sdp.lines()
        .filter(|l| !l.starts_with("a=group:BUNDLE"))
        .flat_map(|l| [l, "\r\n"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:video0\r\na=sendonly\r\n";

    #[test]
    fn a_single_unbundled_section_becomes_a_bundle_of_one() {
        let out = bundle_single_section(ONE).unwrap().unwrap();
        assert!(
            out.contains("t=0 0\r\na=group:BUNDLE video0\r\nm=video 9"),
            "{out}"
        );
        // Already bundled: left alone.
        assert_eq!(bundle_single_section(&out).unwrap(), None);
        // Back out for the answer.
        assert_eq!(without_bundle_group(&out), ONE);
    }

    #[test]
    fn several_unbundled_sections_are_refused_and_odd_offers_left_to_str0m() {
        let two = format!("{ONE}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio1\r\n");
        assert!(matches!(
            bundle_single_section(&two),
            Err(SessionError::BadSdp(m)) if m.contains("must bundle")
        ));
        assert_eq!(bundle_single_section("v=0\r\n").unwrap(), None);
        let no_mid = ONE.replace("a=mid:video0\r\n", "");
        assert_eq!(bundle_single_section(&no_mid).unwrap(), None);
    }

    /// The refusal of every kind of unparsable SDP says what is wrong and shows nothing of
    /// the parser (its debug output carries heap addresses: `PointerOffset(0x7f...)`).
    #[test]
    fn unparsable_sdp_is_described_without_internals() {
        let cases = [
            ("this is not sdp", "must start with v=0"),
            ("v=0\r\nbroken", "line 2 is not of the form"),
            ("v=0\r\nm=video garbage\r\n", "a line has a value"),
            ("v=x\r\ns=-\r\n", "must start with v=0"),
            ("", "must start with v=0"),
        ];
        for (sdp, says) in cases {
            let e = SdpOffer::from_sdp_string(sdp).expect_err(sdp);
            let SessionError::BadSdp(msg) = sdp_error(sdp, e) else {
                panic!("{sdp:?} is not BadSdp");
            };
            assert!(msg.contains(says), "{sdp:?}: {msg}");
            assert!(
                !msg.contains("0x") && !msg.contains("Pointer"),
                "{sdp:?}: {msg}"
            );
        }
    }
}
