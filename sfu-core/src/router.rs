//! The routing table: Room -> Participant -> Producer (an incoming track) -> Consumer (one
//! subscriber's view of that track).
//!
//! The table only: who is in which room, which producers exist and who consumes them. No
//! sessions, no sockets, no forwarding decisions (those are the producer's and the consumer's,
//! [`crate::producer`] and [`crate::forward`]): the worker asks it who receives what and keeps
//! it up to date as people join, publish and leave. The per-packet lookup is one hash probe for
//! the producer, then a walk over its consumers held inline in a `Vec`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::forward::{Consumer, SinkId};
use crate::link::Link;
use crate::producer::{Origin, Producer, ProducerKey};
use crate::session::{Kind, MediaId};
use crate::speaker::SpeakerDetector;
use crate::ParticipantId;

#[derive(Debug, Default)]
struct RoomState {
    participants: Vec<ParticipantId>,
    speaker: SpeakerDetector,
}

#[derive(Debug)]
struct ParticipantState {
    room: String,
    grants: Grants,
    producers: Vec<MediaId>,
}

/// What a participant may do in its room (from its token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    pub publish: bool,
    pub subscribe: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            publish: true,
            subscribe: true,
        }
    }
}

/// What a participant's departure changes for the others.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Departure {
    /// Consumers of the leaver's tracks, to stop in each subscriber's session.
    pub stop: Vec<(ParticipantId, u64, Option<MediaId>)>,
    /// True if the room is now empty.
    pub room_empty: bool,
    /// The leaver was the room's active speaker: the others are told nobody speaks now.
    pub speaker_cleared: Vec<ParticipantId>,
}

/// The routing table of one worker.
#[derive(Debug, Default)]
pub struct Router {
    rooms: HashMap<String, RoomState>,
    participants: HashMap<ParticipantId, ParticipantState>,
    producers: HashMap<ProducerKey, Producer>,
    next_tag: u64,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a participant to a room (creating the room).
    pub fn join(&mut self, room: &str, who: ParticipantId, grants: Grants) {
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .participants
            .push(who);
        self.participants.insert(
            who,
            ParticipantState {
                room: room.to_owned(),
                grants,
                producers: Vec::new(),
            },
        );
    }

    /// The other participants in `who`'s room.
    pub fn peers_of(&self, who: ParticipantId) -> Vec<ParticipantId> {
        let Some(p) = self.participants.get(&who) else {
            return Vec::new();
        };
        self.rooms
            .get(&p.room)
            .map(|r| {
                r.participants
                    .iter()
                    .copied()
                    .filter(|x| *x != who)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The others in `who`'s room who may receive its tracks.
    pub fn subscribers_of(&self, who: ParticipantId) -> Vec<ParticipantId> {
        let mut v = self.peers_of(who);
        v.retain(|p| self.participants.get(p).is_some_and(|s| s.grants.subscribe));
        v
    }

    /// Registers an incoming track. Returns false if the participant is unknown, may not
    /// publish, or the track exists already.
    pub fn add_producer(&mut self, owner: ParticipantId, media: MediaId, kind: Kind) -> bool {
        let Some(p) = self.participants.get_mut(&owner) else {
            return false;
        };
        if !p.grants.publish {
            return false;
        }
        let key = ProducerKey { owner, media };
        if self.producers.contains_key(&key) {
            return false;
        }
        p.producers.push(media);
        self.producers.insert(
            key,
            Producer::new(
                key,
                kind,
                Origin::Local {
                    relay_to: Vec::new(),
                },
            ),
        );
        true
    }

    /// Registers a proxy of a track published elsewhere, fed over `link`. Returns false if the
    /// track is known already (as a proxy or a local producer).
    pub fn add_proxy(&mut self, key: ProducerKey, kind: Kind, link: Link, room: &str) -> bool {
        if self.producers.contains_key(&key) {
            return false;
        }
        let origin = Origin::Remote {
            link,
            room: Arc::from(room),
        };
        self.producers.insert(key, Producer::new(key, kind, origin));
        true
    }

    /// Removes a proxy producer (its track went away on its origin). Returns its consumers to
    /// stop, and the room members to tell that nobody speaks now if its owner was the active
    /// speaker. `None` if no such proxy exists.
    pub fn remove_proxy(&mut self, key: &ProducerKey) -> Option<Departure> {
        let Origin::Remote { room, .. } = &self.producers.get(key)?.origin else {
            return None;
        };
        let room = room.clone();
        let p = self.producers.remove(key)?;
        let mut dep = Departure::default();
        for c in p.consumers {
            dep.stop.push((c.subscriber, c.tag, c.media));
        }
        if let Some(r) = self.rooms.get_mut(&*room) {
            if r.speaker.remove(key.owner).is_some() {
                dep.speaker_cleared = r.participants.clone();
            }
        }
        Some(dep)
    }

    /// Removes every proxy nobody here consumes any more; returns them with the link they came
    /// over (each origin is told to stop relaying).
    pub fn take_idle_proxies(&mut self) -> Vec<(ProducerKey, Link)> {
        let mut out = Vec::new();
        self.producers.retain(|key, p| match p.origin {
            Origin::Remote { link, .. } if p.consumers.is_empty() => {
                out.push((*key, link));
                false
            }
            _ => true,
        });
        out
    }

    /// The members of `room` on this worker who may subscribe.
    pub fn subscribers_in(&self, room: &str) -> Vec<ParticipantId> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.participants
            .iter()
            .copied()
            .filter(|p| self.participants.get(p).is_some_and(|s| s.grants.subscribe))
            .collect()
    }

    /// All producers in `who`'s room that `who` does not own (what a newcomer must receive).
    pub fn producers_for(&self, who: ParticipantId) -> Vec<(ProducerKey, Kind)> {
        let mut out = Vec::new();
        if !self
            .participants
            .get(&who)
            .is_some_and(|p| p.grants.subscribe)
        {
            return out;
        }
        for other in self.peers_of(who) {
            if let Some(p) = self.participants.get(&other) {
                for m in &p.producers {
                    let key = ProducerKey {
                        owner: other,
                        media: *m,
                    };
                    out.push((key, self.producers[&key].kind));
                }
            }
        }
        out
    }

    /// The producers `owner` publishes.
    pub fn producers_for_owner(&self, owner: ParticipantId) -> Vec<(ProducerKey, Kind)> {
        self.participants
            .get(&owner)
            .map(|p| {
                p.producers
                    .iter()
                    .map(|m| {
                        let key = ProducerKey { owner, media: *m };
                        (key, self.producers[&key].kind)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds a (not yet negotiated) consumer of `producer` for `subscriber`, whose peer on this
    /// worker is `sink`; returns its tag.
    pub fn add_consumer(
        &mut self,
        producer: ProducerKey,
        subscriber: ParticipantId,
        sink: SinkId,
    ) -> Option<u64> {
        let p = self.producers.get_mut(&producer)?;
        self.next_tag += 1;
        let tag = self.next_tag;
        p.consumers.push(Consumer::new(tag, subscriber, sink));
        Some(tag)
    }

    /// Records the mid a consumer got in the subscriber's offer; returns its producer.
    pub fn consumer_offered(
        &mut self,
        subscriber: ParticipantId,
        tag: u64,
        media: MediaId,
    ) -> Option<ProducerKey> {
        for p in self.producers.values_mut() {
            if let Some(c) = p
                .consumers
                .iter_mut()
                .find(|c| c.subscriber == subscriber && c.tag == tag)
            {
                c.media = Some(media);
                return Some(p.key);
            }
        }
        None
    }

    /// Marks every offered consumer of `subscriber` active (its answer arrived). Returns the
    /// producers that gained a live consumer (each needs a keyframe).
    pub fn activate_offered(&mut self, subscriber: ParticipantId) -> Vec<ProducerKey> {
        let mut out = Vec::new();
        for p in self.producers.values_mut() {
            for c in p.consumers.iter_mut() {
                if c.subscriber == subscriber && c.media.is_some() && !c.active {
                    c.active = true;
                    out.push(p.key);
                }
            }
        }
        out
    }

    /// The producer behind the track `media` that `subscriber` receives.
    pub fn producer_of(&self, subscriber: ParticipantId, media: MediaId) -> Option<ProducerKey> {
        self.producers
            .values()
            .find(|p| {
                p.consumers
                    .iter()
                    .any(|c| c.subscriber == subscriber && c.media == Some(media))
            })
            .map(|p| p.key)
    }

    /// The consumer behind `subscriber`'s track `media`, with its producer.
    pub fn consumer_mut(
        &mut self,
        subscriber: ParticipantId,
        media: MediaId,
    ) -> Option<(&mut Producer, usize)> {
        self.producers.values_mut().find_map(|p| {
            let i = p
                .consumers
                .iter()
                .position(|c| c.subscriber == subscriber && c.media == Some(media))?;
            Some((p, i))
        })
    }

    /// What `subscriber` receives, one entry per consumer (for stats).
    pub fn consumers_of(&self, subscriber: ParticipantId) -> Vec<(ProducerKey, Kind, &Consumer)> {
        let mut out = Vec::new();
        for p in self.producers.values() {
            for c in p.consumers.iter().filter(|c| c.subscriber == subscriber) {
                out.push((p.key, p.kind, c));
            }
        }
        out
    }

    /// Forces every producer `subscriber` receives from to re-evaluate its layer choices
    /// (the subscriber's budget changed). Returns how many video consumers it has.
    pub fn invalidate_subscriber(&mut self, subscriber: ParticipantId) -> usize {
        let mut n = 0;
        for p in self.producers.values_mut() {
            if p.kind == Kind::Video && p.consumers.iter().any(|c| c.subscriber == subscriber) {
                n += 1;
                if let Some(s) = p.simulcast.as_mut() {
                    s.invalidate();
                }
            }
        }
        n
    }

    /// Whether `subscriber` already consumes `producer`.
    pub fn consumes(&self, subscriber: ParticipantId, producer: ProducerKey) -> bool {
        self.producers
            .get(&producer)
            .is_some_and(|p| p.consumers.iter().any(|c| c.subscriber == subscriber))
    }

    /// How many video tracks `subscriber` receives (its budget is shared among them).
    pub fn video_consumers_of(&self, subscriber: ParticipantId) -> usize {
        self.producers
            .values()
            .filter(|p| p.kind == Kind::Video)
            .map(|p| {
                p.consumers
                    .iter()
                    .filter(|c| c.subscriber == subscriber)
                    .count()
            })
            .sum()
    }

    /// The hot-path lookup: the producer of an incoming packet.
    #[inline]
    pub fn producer_mut(&mut self, key: &ProducerKey) -> Option<&mut Producer> {
        self.producers.get_mut(key)
    }

    /// The room of a participant.
    pub fn room_of(&self, who: ParticipantId) -> Option<&str> {
        self.participants.get(&who).map(|p| p.room.as_str())
    }

    /// Removes a participant, its producers and its consumers.
    pub fn leave(&mut self, who: ParticipantId) -> Departure {
        let mut dep = Departure::default();
        let Some(state) = self.participants.remove(&who) else {
            return dep;
        };
        for media in state.producers {
            if let Some(p) = self.producers.remove(&ProducerKey { owner: who, media }) {
                for c in p.consumers {
                    dep.stop.push((c.subscriber, c.tag, c.media));
                }
            }
        }
        for p in self.producers.values_mut() {
            p.consumers.retain(|c| c.subscriber != who);
        }
        if let Some(room) = self.rooms.get_mut(&state.room) {
            room.participants.retain(|p| *p != who);
            if room.speaker.remove(who).is_some() {
                dep.speaker_cleared = room.participants.clone();
            }
            if room.participants.is_empty() {
                self.rooms.remove(&state.room);
                dep.room_empty = true;
            }
        }
        dep
    }

    /// Feeds one audio packet's level to its room's speaker detector. When the room's active
    /// speaker changes, returns the members to tell and the new speaker.
    pub fn on_audio_level(
        &mut self,
        now: Instant,
        who: ParticipantId,
        dbov: i8,
    ) -> Option<(Vec<ParticipantId>, Option<ParticipantId>)> {
        let room = self.participants.get(&who)?.room.as_str();
        let state = self.rooms.get_mut(room)?;
        state.speaker.on_level(now, who, dbov);
        let change = state.speaker.tick(now)?;
        Some((state.participants.clone(), change))
    }

    /// Like [`Router::on_audio_level`], for a packet relayed from another worker: the level of
    /// the proxy `key`'s owner counts in the proxy's room.
    pub fn on_proxy_audio_level(
        &mut self,
        now: Instant,
        key: &ProducerKey,
        dbov: i8,
    ) -> Option<(Vec<ParticipantId>, Option<ParticipantId>)> {
        let Origin::Remote { room, .. } = &self.producers.get(key)?.origin else {
            return None;
        };
        let state = self.rooms.get_mut(&**room)?;
        state.speaker.on_level(now, key.owner, dbov);
        let change = state.speaker.tick(now)?;
        Some((state.participants.clone(), change))
    }

    /// Number of participants and producers (for stats and tests).
    pub fn counts(&self) -> (usize, usize) {
        (self.participants.len(), self.producers.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::test_media_id;

    fn pid(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    #[test]
    fn newcomer_receives_existing_producers_and_leaver_is_removed() {
        let mut r = Router::new();
        r.join("a", pid(1), Grants::default());
        r.join("a", pid(2), Grants::default());
        r.join("b", pid(3), Grants::default());
        assert!(r.add_producer(pid(1), test_media_id("0"), Kind::Audio));
        assert!(r.add_producer(pid(1), test_media_id("1"), Kind::Video));
        assert!(
            !r.add_producer(pid(1), test_media_id("1"), Kind::Video),
            "duplicate"
        );
        assert!(
            !r.add_producer(pid(9), test_media_id("0"), Kind::Audio),
            "unknown"
        );

        // Room isolation: 3 is in another room.
        assert_eq!(r.peers_of(pid(1)), vec![pid(2)]);
        assert!(r.producers_for(pid(3)).is_empty());
        let for2 = r.producers_for(pid(2));
        assert_eq!(for2.len(), 2);

        // Subscribe 2 to both, negotiate, activate.
        let mut tags = Vec::new();
        for (k, _) in &for2 {
            tags.push(r.add_consumer(*k, pid(2), SinkId(0)).unwrap());
        }
        assert_eq!(r.activate_offered(pid(2)), vec![], "nothing offered yet");
        r.consumer_offered(pid(2), tags[0], test_media_id("5"))
            .unwrap();
        r.consumer_offered(pid(2), tags[1], test_media_id("6"))
            .unwrap();
        assert_eq!(r.activate_offered(pid(2)).len(), 2);
        assert_eq!(
            r.producer_of(pid(2), test_media_id("6")).map(|k| k.owner),
            Some(pid(1))
        );

        // 1 leaves: 2's consumers must be stopped with their mids.
        let dep = r.leave(pid(1));
        assert_eq!(dep.stop.len(), 2);
        assert!(dep.stop.iter().all(|(s, _, m)| *s == pid(2) && m.is_some()));
        assert!(!dep.room_empty);
        assert_eq!(r.counts(), (2, 0));
        assert!(r.leave(pid(2)).room_empty);
        assert_eq!(
            r.leave(pid(2)),
            Departure::default(),
            "second leave is a no-op"
        );
    }

    #[test]
    fn grants_limit_publishing_and_subscribing() {
        let mut r = Router::new();
        let viewer = Grants {
            publish: false,
            subscribe: true,
        };
        let speaker = Grants {
            publish: true,
            subscribe: false,
        };
        r.join("a", pid(1), speaker);
        r.join("a", pid(2), viewer);
        assert!(
            !r.add_producer(pid(2), test_media_id("0"), Kind::Audio),
            "viewer cannot publish"
        );
        assert!(r.add_producer(pid(1), test_media_id("0"), Kind::Audio));
        assert_eq!(r.subscribers_of(pid(1)), vec![pid(2)]);
        assert!(
            r.subscribers_of(pid(2)).is_empty(),
            "speaker does not subscribe"
        );
        assert!(r.producers_for(pid(1)).is_empty());
        assert_eq!(r.producers_for(pid(2)).len(), 1);
    }

    #[test]
    fn subscriber_leaving_drops_its_consumers() {
        let mut r = Router::new();
        r.join("a", pid(1), Grants::default());
        r.join("a", pid(2), Grants::default());
        r.add_producer(pid(1), test_media_id("0"), Kind::Video);
        let key = r.producers_for(pid(2))[0].0;
        r.add_consumer(key, pid(2), SinkId(0)).unwrap();
        r.leave(pid(2));
        assert!(r.producer_mut(&key).unwrap().consumers.is_empty());
    }

    #[test]
    fn proxies_of_remote_tracks_live_while_someone_here_consumes_them() {
        let mut r = Router::new();
        r.join("a", pid(1), Grants::default());
        r.join(
            "a",
            pid(2),
            Grants {
                publish: true,
                subscribe: false,
            },
        );
        r.join("b", pid(3), Grants::default());
        assert_eq!(r.subscribers_in("a"), vec![pid(1)], "2 may not subscribe");
        assert!(r.subscribers_in("nowhere").is_empty());

        // Participant 9 publishes on worker 4, in room a.
        let key = ProducerKey {
            owner: pid(9),
            media: test_media_id("0"),
        };
        assert!(r.add_proxy(key, Kind::Audio, Link::Worker(4), "a"));
        assert!(!r.add_proxy(key, Kind::Audio, Link::Worker(4), "a"), "once");
        assert_eq!(
            r.producer_mut(&key).unwrap().origin_link(),
            Some(Link::Worker(4))
        );
        let tag = r.add_consumer(key, pid(1), SinkId(0)).unwrap();
        r.consumer_offered(pid(1), tag, test_media_id("7")).unwrap();
        assert!(r.take_idle_proxies().is_empty(), "1 consumes it");

        // Its level counts in room a's speaker detection (members 1 and 2 are told).
        let t0 = Instant::now();
        let mut told = None;
        for i in 0..50 {
            if let Some(change) =
                r.on_proxy_audio_level(t0 + Duration::from_millis(20 * i), &key, -20)
            {
                told = Some(change);
            }
        }
        let (members, speaker) = told.expect("a speaker change");
        assert_eq!((members, speaker), (vec![pid(1), pid(2)], Some(pid(9))));

        // The track goes away on its origin: 1's consumer stops, the speaker is cleared.
        let dep = r.remove_proxy(&key).unwrap();
        assert_eq!(dep.stop, vec![(pid(1), tag, Some(test_media_id("7")))]);
        assert_eq!(dep.speaker_cleared, vec![pid(1), pid(2)]);
        assert!(r.remove_proxy(&key).is_none());

        // A proxy whose last consumer left is released, with its origin to tell.
        assert!(r.add_proxy(key, Kind::Video, Link::Worker(4), "a"));
        r.add_consumer(key, pid(1), SinkId(0)).unwrap();
        r.leave(pid(1));
        assert_eq!(r.take_idle_proxies(), vec![(key, Link::Worker(4))]);
        assert!(r.producer_mut(&key).is_none());
        // A local producer is never taken for a proxy.
        r.add_producer(pid(3), test_media_id("1"), Kind::Video);
        assert!(r.take_idle_proxies().is_empty());
    }
}
