//! The call-room directory: the one owner of who is in which call room and where each member
//! sits (on which worker; once rooms span nodes, on which node).
//!
//! It places every new member on a worker (the least loaded; among equals, one that already
//! hosts the room, so fewer packets cross between workers), lists the members others see with
//! their names and mute states, remembers which tracks each one publishes, and tells the
//! members of every change (join, leave, mute, track published or ended) as
//! [`PeerEvent::Room`] on the same channel their media events come on. Doors decide only
//! whether a member is listed: a call participant and a WHIP publisher are, a WHEP player is
//! not (it takes a seat on a worker, nothing more).
//!
//! The other room tables are views of different things: each worker's [`crate::router`] holds
//! the media side of the same rooms (the producers and consumers of its own members), and
//! watch-party rooms (`messaging::watch_rooms`) are not call rooms at all.
//!
//! Control plane only: one mutex, taken a few times per join, never per packet.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::events::{EventSender, Member, PeerEvent, RoomEvent};
use crate::{Kind, ParticipantId, TrackInfo};

/// How a member presents itself to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The account behind it (the token's subject).
    pub identity: String,
    /// The name others see.
    pub name: String,
}

/// One member's place: its worker, where its events go, and what others see of it.
struct Seat {
    id: ParticipantId,
    worker: usize,
    events: EventSender,
    /// `Some` once the member is listed (see [`RoomDirectory::enter`]).
    listed: Option<Member>,
    tracks: Vec<TrackInfo>,
}

struct Room {
    /// Seats per worker.
    per_worker: Vec<usize>,
    seats: Vec<Seat>,
}

impl Room {
    fn seat_mut(&mut self, id: ParticipantId) -> Option<&mut Seat> {
        self.seats.iter_mut().find(|s| s.id == id)
    }

    /// Tells every listed member but `except` about `event`.
    fn tell_others(&self, except: ParticipantId, event: &RoomEvent) {
        for s in self
            .seats
            .iter()
            .filter(|s| s.id != except && s.listed.is_some())
        {
            let _ = s.events.send(PeerEvent::Room(event.clone()));
        }
    }
}

struct Places {
    /// Seats per worker, over all rooms.
    load: Vec<usize>,
    rooms: HashMap<String, Room>,
}

/// Who is in which call room, and on which worker. Owned by [`crate::Sfu`], which seats and
/// unseats members as they join and leave; doors list members and announce what they do.
pub struct RoomDirectory {
    places: Mutex<Places>,
}

impl RoomDirectory {
    /// An empty directory over `workers` workers.
    pub(crate) fn new(workers: usize) -> RoomDirectory {
        RoomDirectory {
            places: Mutex::new(Places {
                load: vec![0; workers],
                rooms: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Places> {
        self.places.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives member `id` of `room` a seat on a worker and returns the worker: the one with
    /// the fewest seats; among equals, one that already hosts the room. The member is not
    /// listed yet.
    pub(crate) fn seat(&self, room: &str, id: ParticipantId, events: EventSender) -> usize {
        let mut places = self.lock();
        let Places { load, rooms } = &mut *places;
        let r = rooms.entry(room.to_owned()).or_insert_with(|| Room {
            per_worker: vec![0; load.len()],
            seats: Vec::new(),
        });
        let worker = (0..load.len())
            .min_by_key(|w| (load[*w], r.per_worker[*w] == 0))
            .unwrap_or(0);
        if let Some(l) = load.get_mut(worker) {
            *l += 1;
        }
        if let Some(n) = r.per_worker.get_mut(worker) {
            *n += 1;
        }
        r.seats.push(Seat {
            id,
            worker,
            events,
            listed: None,
            tracks: Vec::new(),
        });
        worker
    }

    /// Frees member `id`'s seat. A listed member's tracks end and it leaves the list; the
    /// others are told, in that order. Idempotent. The room goes when its last seat does.
    pub(crate) fn unseat(&self, room: &str, id: ParticipantId) {
        let mut places = self.lock();
        let Places { load, rooms } = &mut *places;
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        let Some(i) = r.seats.iter().position(|s| s.id == id) else {
            return;
        };
        let seat = r.seats.remove(i);
        if let Some(l) = load.get_mut(seat.worker) {
            *l = l.saturating_sub(1);
        }
        if let Some(n) = r.per_worker.get_mut(seat.worker) {
            *n = n.saturating_sub(1);
        }
        if seat.listed.is_some() {
            for t in seat.tracks {
                r.tell_others(id, &RoomEvent::TrackUnpublished(t));
            }
            r.tell_others(id, &RoomEvent::Left(id));
        }
        if r.seats.is_empty() {
            rooms.remove(room);
        }
    }

    /// Lists seated member `id` under `profile`, tells the others, and returns who was listed
    /// before it, in joining order. `None` when `id` has no seat in `room`.
    pub fn enter(&self, room: &str, id: ParticipantId, profile: Profile) -> Option<Vec<Member>> {
        let mut places = self.lock();
        let r = places.rooms.get_mut(room)?;
        let before: Vec<Member> = r.seats.iter().filter_map(|s| s.listed.clone()).collect();
        let me = Member {
            id,
            identity: profile.identity,
            name: profile.name,
            audio_muted: false,
            video_muted: false,
        };
        let seat = r.seat_mut(id)?;
        if seat.listed.is_some() {
            return Some(before.into_iter().filter(|m| m.id != id).collect());
        }
        seat.listed = Some(me.clone());
        r.tell_others(id, &RoomEvent::Joined(me));
        Some(before)
    }

    /// Records a listed member's mute change and tells the others.
    pub fn set_muted(&self, room: &str, id: ParticipantId, kind: Kind, muted: bool) {
        let mut places = self.lock();
        let Some(r) = places.rooms.get_mut(room) else {
            return;
        };
        let Some(m) = r.seat_mut(id).and_then(|s| s.listed.as_mut()) else {
            return;
        };
        match kind {
            Kind::Audio => m.audio_muted = muted,
            Kind::Video => m.video_muted = muted,
        }
        r.tell_others(
            id,
            &RoomEvent::Muted {
                who: id,
                kind,
                muted,
            },
        );
    }

    /// Records that a listed member's track went live and tells the others; when it leaves,
    /// they are told the track ended.
    pub fn published(&self, room: &str, track: TrackInfo) {
        let mut places = self.lock();
        let Some(r) = places.rooms.get_mut(room) else {
            return;
        };
        let id = track.publisher;
        let Some(seat) = r.seat_mut(id).filter(|s| s.listed.is_some()) else {
            return;
        };
        seat.tracks.push(track.clone());
        r.tell_others(id, &RoomEvent::TrackPublished(track));
    }

    /// Whether `id` is a listed member of `room`.
    pub fn is_listed(&self, room: &str, id: ParticipantId) -> bool {
        self.lock()
            .rooms
            .get(room)
            .and_then(|r| r.seats.iter().find(|s| s.id == id))
            .is_some_and(|s| s.listed.is_some())
    }

    /// The listed members of `room`, in joining order.
    pub fn members(&self, room: &str) -> Vec<Member> {
        self.lock()
            .rooms
            .get(room)
            .map(|r| r.seats.iter().filter_map(|s| s.listed.clone()).collect())
            .unwrap_or_default()
    }

    /// Seats on each worker, over all rooms.
    pub fn worker_loads(&self) -> Vec<usize> {
        self.lock().load.clone()
    }

    /// Number of rooms with at least one seat.
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{peer_events, EventReceiver, Lagged};

    fn pid(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    fn profile(name: &str) -> Profile {
        Profile {
            identity: format!("user-{name}"),
            name: name.into(),
        }
    }

    /// Seats and lists `n`, returning its event receiver and who it saw.
    fn join(d: &RoomDirectory, room: &str, n: u64) -> (EventReceiver, Vec<Member>) {
        join_with(d, room, n, 64)
    }

    fn join_with(
        d: &RoomDirectory,
        room: &str,
        n: u64,
        capacity: usize,
    ) -> (EventReceiver, Vec<Member>) {
        let (tx, rx) = peer_events(capacity);
        d.seat(room, pid(n), tx);
        let before = d.enter(room, pid(n), profile(&n.to_string())).unwrap();
        (rx, before)
    }

    fn room_events(rx: &mut EventReceiver) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        while let Ok(Some(ev)) = rx.try_recv() {
            if let PeerEvent::Room(e) = ev {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn joins_mutes_tracks_and_leaves_are_told_to_the_others_only() {
        let d = RoomDirectory::new(1);
        let (mut a, seen) = join(&d, "r", 1);
        assert!(seen.is_empty());
        let (mut b, seen) = join(&d, "r", 2);
        assert_eq!(seen.iter().map(|m| m.id).collect::<Vec<_>>(), [pid(1)]);
        assert!(
            matches!(&room_events(&mut a)[..], [RoomEvent::Joined(m)] if m.id == pid(2) && m.name == "2")
        );
        assert!(room_events(&mut b).is_empty(), "b is not told about itself");

        d.set_muted("r", pid(2), Kind::Audio, true);
        let track = TrackInfo {
            mid: "0".into(),
            publisher: pid(2),
            kind: Kind::Video,
        };
        d.published("r", track.clone());
        assert_eq!(
            room_events(&mut a),
            [
                RoomEvent::Muted {
                    who: pid(2),
                    kind: Kind::Audio,
                    muted: true
                },
                RoomEvent::TrackPublished(track.clone())
            ]
        );
        let (_c, seen) = join(&d, "r", 3);
        assert!(
            seen.iter()
                .any(|m| m.id == pid(2) && m.audio_muted && !m.video_muted),
            "a late joiner sees the mute state"
        );
        room_events(&mut a);

        d.unseat("r", pid(2));
        d.unseat("r", pid(2));
        assert_eq!(
            room_events(&mut a),
            [RoomEvent::TrackUnpublished(track), RoomEvent::Left(pid(2))],
            "its tracks end, then it leaves; once"
        );
        assert_eq!(d.members("r").len(), 2);
        d.unseat("r", pid(1));
        d.unseat("r", pid(3));
        assert_eq!(d.room_count(), 0, "the room goes with its last seat");
        assert_eq!(d.worker_loads(), [0]);
    }

    #[test]
    fn an_unlisted_seat_is_invisible_and_silent() {
        let d = RoomDirectory::new(1);
        let (mut a, _) = join(&d, "r", 1);
        let (tx, mut player) = peer_events(64);
        d.seat("r", pid(2), tx);
        assert!(!d.is_listed("r", pid(2)));
        assert!(d.is_listed("r", pid(1)));
        d.set_muted("r", pid(2), Kind::Audio, true);
        d.published(
            "r",
            TrackInfo {
                mid: "0".into(),
                publisher: pid(2),
                kind: Kind::Audio,
            },
        );
        d.unseat("r", pid(2));
        assert!(room_events(&mut a).is_empty(), "nobody hears of a player");
        d.set_muted("r", pid(1), Kind::Video, true);
        assert!(
            room_events(&mut player).is_empty(),
            "a player hears nothing"
        );
        assert_eq!(d.members("r").len(), 1);
        assert!(d.enter("other", pid(1), profile("x")).is_none());
    }

    #[test]
    fn entering_twice_lists_once() {
        let d = RoomDirectory::new(1);
        let (mut a, _) = join(&d, "r", 1);
        let (_b, _) = join(&d, "r", 2);
        let again = d.enter("r", pid(2), profile("2")).unwrap();
        assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [pid(1)]);
        assert_eq!(room_events(&mut a).len(), 1);
        assert_eq!(d.members("r").len(), 2);
    }

    #[test]
    fn seats_go_to_the_least_loaded_worker_and_prefer_the_rooms_own() {
        let d = RoomDirectory::new(3);
        let seat = |room: &str, n: u64| {
            let (tx, _rx) = peer_events(1);
            d.seat(room, pid(n), tx)
        };
        assert_eq!(seat("a", 1), 0);
        assert_eq!(seat("b", 2), 1);
        assert_eq!(seat("c", 3), 2);
        // All workers equal: "b" goes back to the worker that hosts it.
        assert_eq!(seat("b", 4), 1);
        assert_eq!(d.worker_loads(), [1, 2, 1]);
        // Load comes first: "b" does not pile onto its worker.
        assert_eq!(seat("b", 5), 0);
        d.unseat("b", pid(2));
        d.unseat("b", pid(4));
        assert_eq!(d.worker_loads(), [2, 0, 1]);
        // A failed join gives its seat back: the room and the load are as before.
        assert_eq!(seat("d", 6), 1);
        d.unseat("d", pid(6));
        assert_eq!(d.worker_loads(), [2, 0, 1]);
        assert_eq!(d.room_count(), 3);
    }

    #[test]
    fn a_member_that_stops_reading_lags_alone() {
        let d = RoomDirectory::new(1);
        let (mut reader, _) = join(&d, "r", 1);
        let (mut stalled, _) = join_with(&d, "r", 2, 8);
        let (_x, _) = join(&d, "r", 3);
        room_events(&mut reader);
        let mut heard = 0;
        for round in 0..10_000 {
            d.set_muted("r", pid(3), Kind::Audio, round % 2 == 0);
            if round % 32 == 31 {
                heard += room_events(&mut reader).len();
            }
        }
        heard += room_events(&mut reader).len();
        assert_eq!(heard, 10_000, "the member that reads loses nothing");
        assert!(
            matches!(stalled.try_recv(), Err(Lagged)),
            "the stalled member's queue stopped at its limit and says so"
        );
        assert!(
            d.is_listed("r", pid(2)),
            "its door, not the directory, ends it"
        );
    }
}
