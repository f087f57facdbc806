//! Presence: heartbeats, disconnects, expiry and sweeps; in-process on a hand-moved clock, and
//! on Redis with a short TTL and two `Presence::redis` instances playing two nodes. Redis: see
//! `tests/common/mod.rs` (`GAX_TEST_REDIS_URL`, `skip`).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use messaging::presence::DEFAULT_TTL;
use messaging::{Bus, Clock, Event, Presence, PresenceChange, PresenceError, UserId};

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

const U: UserId = UserId(1);
const V: UserId = UserId(2);
const W: UserId = UserId(3);

fn online(user: UserId) -> Option<PresenceChange> {
    Some(PresenceChange { user, online: true })
}

fn offline(user: UserId) -> Option<PresenceChange> {
    Some(PresenceChange {
        user,
        online: false,
    })
}

fn local() -> (Presence, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let presence = Presence::in_process_with_clock(Duration::from_secs(30), clock.clone());
    (presence, clock)
}

#[tokio::test]
async fn in_process_connections_and_transitions() {
    let (p, _clock) = local();
    assert_eq!(
        Presence::in_process(DEFAULT_TTL).ttl(),
        Duration::from_secs(30)
    );
    assert!(!p.is_online(U).await.unwrap());
    assert_eq!(p.heartbeat(U, "tab-1").await.unwrap(), online(U));
    assert_eq!(p.heartbeat(U, "tab-1").await.unwrap(), None);
    assert_eq!(p.heartbeat(U, "phone").await.unwrap(), None);
    assert_eq!(p.heartbeat(V, "tab-9").await.unwrap(), online(V));
    assert!(p.is_online(U).await.unwrap());
    assert_eq!(p.online(&[W, V, U]).await.unwrap(), [V, U]);
    assert_eq!(p.online(&[]).await.unwrap(), []);

    // One of two connections closes: still online; the last one: offline, once.
    assert_eq!(p.disconnect(U, "tab-1").await.unwrap(), None);
    assert!(p.is_online(U).await.unwrap());
    assert_eq!(p.disconnect(U, "phone").await.unwrap(), offline(U));
    assert_eq!(p.disconnect(U, "phone").await.unwrap(), None);
    assert_eq!(p.disconnect(W, "never").await.unwrap(), None);
    assert!(!p.is_online(U).await.unwrap());
    assert_eq!(p.heartbeat(U, "tab-2").await.unwrap(), online(U));

    for bad in ["", &"x".repeat(129)] {
        assert!(matches!(
            p.heartbeat(U, bad).await,
            Err(PresenceError::InvalidConnectionId)
        ));
        assert!(p.disconnect(U, bad).await.is_err());
    }
}

#[tokio::test]
async fn in_process_expiry_and_sweep() {
    let (p, clock) = local();
    p.heartbeat(U, "a").await.unwrap();
    p.heartbeat(V, "b").await.unwrap();
    clock.advance(20_000);
    p.heartbeat(V, "b").await.unwrap(); // V keeps heartbeating
    clock.advance(9_999);
    assert!(p.is_online(U).await.unwrap(), "within the TTL");
    assert!(p.sweep().await.unwrap().is_empty());
    clock.advance(1);
    assert!(!p.is_online(U).await.unwrap(), "TTL passed");
    assert!(p.is_online(V).await.unwrap());
    assert_eq!(p.sweep().await.unwrap(), [offline(U).unwrap()]);
    assert!(p.sweep().await.unwrap().is_empty(), "reported once");
    clock.advance(20_000);
    assert_eq!(p.sweep().await.unwrap(), [offline(V).unwrap()]);
    assert_eq!(p.heartbeat(U, "a").await.unwrap(), online(U));

    // Expired but heartbeating again before a sweep noticed: online again, nothing reported.
    clock.advance(31_000);
    assert!(!p.is_online(U).await.unwrap());
    assert_eq!(p.heartbeat(U, "a2").await.unwrap(), None);
    assert!(p.is_online(U).await.unwrap());
    assert!(p.sweep().await.unwrap().is_empty());
}

#[tokio::test]
async fn changes_are_published_on_the_bus() {
    let bus = Bus::in_process();
    let mut sub = bus.subscribe().await.unwrap();
    let (p, clock) = local();
    let p = p.publishing_to(bus.clone());
    p.heartbeat(U, "a").await.unwrap();
    p.heartbeat(U, "b").await.unwrap(); // no change, nothing published
    p.disconnect(U, "a").await.unwrap();
    p.disconnect(U, "b").await.unwrap();
    p.heartbeat(V, "c").await.unwrap();
    clock.advance(30_000);
    p.sweep().await.unwrap();
    let expected = [(U, true), (U, false), (V, true), (V, false)];
    for (user, online) in expected {
        let e = common::within("presence event", sub.next()).await.unwrap();
        assert_eq!(e.event, Event::Presence { user, online });
        assert_eq!(&e.origin, bus.node());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), sub.next())
            .await
            .is_err(),
        "nothing else"
    );
}

#[tokio::test]
async fn redis_two_nodes_agree() {
    let Some(redis) = common::redis("presence-nodes").await else {
        return;
    };
    let ttl = Duration::from_secs(30);
    let a = Presence::redis(&redis.url, &redis.prefix, ttl)
        .await
        .unwrap();
    let b = Presence::redis(&redis.url, &redis.prefix, ttl)
        .await
        .unwrap();
    assert_eq!(a.heartbeat(U, "tab").await.unwrap(), online(U));
    assert!(b.is_online(U).await.unwrap());
    assert_eq!(
        b.heartbeat(U, "phone").await.unwrap(),
        None,
        "already online"
    );
    assert_eq!(b.heartbeat(V, "x").await.unwrap(), online(V));
    assert_eq!(a.online(&[W, U, V]).await.unwrap(), [U, V]);
    let many: Vec<UserId> = (1..=1200).map(UserId).collect();
    assert_eq!(a.online(&many).await.unwrap(), [U, V]);

    assert_eq!(a.disconnect(U, "tab").await.unwrap(), None);
    assert!(a.is_online(U).await.unwrap());
    assert_eq!(b.disconnect(U, "phone").await.unwrap(), offline(U));
    assert_eq!(
        a.disconnect(U, "phone").await.unwrap(),
        None,
        "reported once"
    );
    assert!(!a.is_online(U).await.unwrap());
    assert!(!b.is_online(U).await.unwrap());
    assert!(a.sweep().await.unwrap().is_empty());
    assert!(matches!(
        a.heartbeat(U, "").await,
        Err(PresenceError::InvalidConnectionId)
    ));
    redis.cleanup().await;
}

#[tokio::test]
async fn redis_expiry_is_seen_by_every_node_and_reported_once() {
    let Some(redis) = common::redis("presence-expiry").await else {
        return;
    };
    let ttl = Duration::from_millis(300);
    let a = Presence::redis(&redis.url, &redis.prefix, ttl)
        .await
        .unwrap();
    let b = Presence::redis(&redis.url, &redis.prefix, ttl)
        .await
        .unwrap();
    assert_eq!(a.heartbeat(U, "tab").await.unwrap(), online(U));
    assert!(b.is_online(U).await.unwrap());

    // No more heartbeats: both nodes see U go offline once the TTL passed.
    common::eventually("U offline on b", Duration::from_secs(3), || async {
        (!b.is_online(U).await.unwrap()).then_some(())
    })
    .await;
    assert!(!a.is_online(U).await.unwrap());

    // Both nodes sweep at once: exactly one of them reports the change.
    let (from_a, from_b) = tokio::join!(a.sweep(), b.sweep());
    let mut reported = from_a.unwrap();
    reported.extend(from_b.unwrap());
    assert_eq!(reported, [offline(U).unwrap()]);
    assert!(a.sweep().await.unwrap().is_empty());

    // Coming back is a new change; a running sweeper publishes the next expiry on the bus.
    assert_eq!(b.heartbeat(U, "tab").await.unwrap(), online(U));
    let bus = Bus::in_process();
    let mut sub = bus.subscribe().await.unwrap();
    let sweeper = a
        .clone()
        .publishing_to(bus)
        .spawn_sweeper(Duration::from_millis(50));
    let e = common::within("offline from the sweeper", sub.next())
        .await
        .unwrap();
    assert_eq!(
        e.event,
        Event::Presence {
            user: U,
            online: false
        }
    );
    sweeper.abort();
    redis.cleanup().await;
}
