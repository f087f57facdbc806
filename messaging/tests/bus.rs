//! The event bus: in-process and over Redis (two `Bus::redis` instances with one prefix play
//! two nodes). Redis: see `tests/common/mod.rs` (`GAX_TEST_REDIS_URL`, `skip`).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging::{
    Bus, BusError, ChatId, Envelope, Event, Message, MessageId, Position, RedisBusOptions,
    Subscription, UserId,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn message(chat: i64, seq: i64, text: &str) -> Message {
    Message {
        id: MessageId(chat * 1000 + seq),
        chat: ChatId(chat),
        seq,
        sender: UserId(1),
        text: Some(text.into()),
        attachments: vec![],
        client_key: None,
        created_at: 1_700_000_000_000 + seq,
        edited_at: None,
        deleted_at: None,
    }
}

fn created(seq: i64) -> Event {
    Event::MessageCreated {
        message: message(1, seq, &format!("message {seq}")),
    }
}

fn typing(user: i64) -> Event {
    Event::Typing {
        chat: ChatId(1),
        user: UserId(user),
    }
}

async fn next(sub: &mut Subscription) -> Envelope {
    common::within("next event", sub.next()).await.unwrap()
}

/// Takes `n` deliveries and splits them into (durable, ephemeral), each in arrival order.
async fn take(sub: &mut Subscription, n: usize) -> (Vec<Envelope>, Vec<Envelope>) {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(next(sub).await);
    }
    all.into_iter().partition(|e| e.event.is_durable())
}

fn events(envelopes: &[Envelope]) -> Vec<Event> {
    envelopes.iter().map(|e| e.event.clone()).collect()
}

/// Nothing more arrives within a short while.
async fn quiet(sub: &mut Subscription) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(150), sub.next()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

#[tokio::test]
async fn in_process_delivers_to_every_subscriber_in_order() {
    let bus = Bus::in_process();
    let mut a = bus.subscribe().await.unwrap();
    let mut b = bus.subscribe().await.unwrap();
    let sent = [created(1), typing(2), created(2)];
    for e in &sent {
        assert_eq!(bus.publish(e).await.unwrap(), None);
    }
    // In order within each kind: durable and ephemeral events travel apart (as on Redis), so
    // a flood of one kind never pushes out the other.
    let (durable, ephemeral): (Vec<Event>, Vec<Event>) =
        sent.iter().cloned().partition(Event::is_durable);
    for sub in [&mut a, &mut b] {
        let mut got = Vec::new();
        for _ in &sent {
            let e = next(sub).await;
            assert_eq!(&e.origin, bus.node());
            assert_eq!(e.position, None);
            got.push(e.event);
        }
        let (got_durable, got_ephemeral): (Vec<Event>, Vec<Event>) =
            got.into_iter().partition(Event::is_durable);
        assert_eq!(
            (got_durable, got_ephemeral),
            (durable.clone(), ephemeral.clone())
        );
        quiet(sub).await;
    }
    // A clone is the same node; another bus is another node.
    assert_eq!(bus.clone().node(), bus.node());
    assert_ne!(Bus::in_process().node(), bus.node());
    assert!(!bus.has_history());
    assert!(matches!(
        bus.subscribe_from(Position::ORIGIN).await,
        Err(BusError::NoHistory)
    ));
}

#[tokio::test]
async fn in_process_lagging_subscriber_is_told_how_much_it_lost() {
    let bus = Bus::in_process_with_capacity(2);
    let mut slow = bus.subscribe().await.unwrap();
    for seq in 1..=5 {
        bus.publish(&created(seq)).await.unwrap();
    }
    match slow.next().await {
        Err(BusError::Lagged {
            missed: Some(3),
            durable: true,
        }) => {}
        other => panic!("expected Lagged(3), got {other:?}"),
    }
    assert_eq!(next(&mut slow).await.event, created(4));
    assert_eq!(next(&mut slow).await.event, created(5));
    drop(bus);
    assert!(matches!(slow.next().await, Err(BusError::Closed)));
}

/// A flood of ephemeral events (typing) overflows only their own channel: the durable events
/// around it all arrive, and the lag report says only ephemeral ones were lost.
#[tokio::test]
async fn in_process_an_ephemeral_flood_never_pushes_out_a_durable_event() {
    let bus = Bus::in_process_with_capacity(4);
    let mut sub = bus.subscribe().await.unwrap();
    bus.publish(&created(1)).await.unwrap();
    for _ in 0..100 {
        bus.publish(&typing(7)).await.unwrap();
    }
    bus.publish(&created(2)).await.unwrap();
    assert_eq!(next(&mut sub).await.event, created(1));
    assert_eq!(next(&mut sub).await.event, created(2));
    match sub.next().await {
        Err(BusError::Lagged {
            missed: Some(96),
            durable: false,
        }) => {}
        other => panic!("expected an ephemeral lag of 96, got {other:?}"),
    }
    for _ in 0..4 {
        assert_eq!(next(&mut sub).await.event, typing(7));
    }
}

#[tokio::test]
async fn redis_two_nodes_see_each_others_events_in_order() {
    let Some(redis) = common::redis("bus-two-nodes").await else {
        return;
    };
    let a = Bus::redis(&redis.url, &redis.prefix).await.unwrap();
    let b = Bus::redis(&redis.url, &redis.prefix).await.unwrap();
    assert_ne!(a.node(), b.node());
    let mut sub_a = a.subscribe().await.unwrap();
    let mut sub_b = b.subscribe().await.unwrap();

    let p1 = a
        .publish(&created(1))
        .await
        .unwrap()
        .expect("durable: a position");
    assert_eq!(a.publish(&typing(10)).await.unwrap(), None);
    let p2 = a.publish(&created(2)).await.unwrap().unwrap();
    b.publish(&typing(11)).await.unwrap();
    let p3 = b.publish(&created(3)).await.unwrap().unwrap();
    b.publish(&Event::Presence {
        user: UserId(7),
        online: true,
    })
    .await
    .unwrap();
    assert!(p1 < p2 && p2 < p3);

    for sub in [&mut sub_a, &mut sub_b] {
        let (durable, ephemeral) = take(sub, 6).await;
        assert_eq!(events(&durable), [created(1), created(2), created(3)]);
        let positions: Vec<_> = durable.iter().map(|e| e.position).collect();
        assert_eq!(positions, [Some(p1), Some(p2), Some(p3)]);
        let origins: Vec<_> = durable.iter().map(|e| &e.origin).collect();
        assert_eq!(origins, [a.node(), a.node(), b.node()]);
        assert_eq!(
            events(&ephemeral),
            [
                typing(10),
                typing(11),
                Event::Presence {
                    user: UserId(7),
                    online: true
                }
            ]
        );
        assert_eq!(ephemeral[0].origin, *a.node());
        assert_eq!(ephemeral[1].origin, *b.node());
        assert!(ephemeral.iter().all(|e| e.position.is_none()));
        quiet(sub).await;
    }

    // A bus with another prefix is another deployment: it sees none of this.
    let other = Bus::redis(&redis.url, &format!("{}other:", redis.prefix))
        .await
        .unwrap();
    let mut sub_other = other.subscribe().await.unwrap();
    a.publish(&created(4)).await.unwrap();
    a.publish(&typing(12)).await.unwrap();
    quiet(&mut sub_other).await;
    redis.cleanup().await;
}

#[tokio::test]
async fn redis_subscriber_can_start_from_a_stream_position() {
    let Some(redis) = common::redis("bus-from-position").await else {
        return;
    };
    let bus = Bus::redis(&redis.url, &redis.prefix).await.unwrap();
    assert!(bus.has_history());
    let p1 = bus.publish(&created(1)).await.unwrap().unwrap();
    bus.publish(&typing(5)).await.unwrap(); // ephemeral: not replayed
    let p2 = bus.publish(&created(2)).await.unwrap().unwrap();
    let p3 = bus.publish(&created(3)).await.unwrap().unwrap();

    // Created after the events, from the position of the first: the two after it, in order.
    let mut from_p1 = bus.subscribe_from(p1).await.unwrap();
    let got = [next(&mut from_p1).await, next(&mut from_p1).await];
    assert_eq!(events(&got), [created(2), created(3)]);
    assert_eq!(got.map(|e| e.position), [Some(p2), Some(p3)]);

    // From the origin: everything retained; a position survives a round trip as text.
    let mut all = bus
        .subscribe_from(Position::ORIGIN.to_string().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(next(&mut all).await.event, created(1));
    let mut from_text = bus
        .subscribe_from(p2.to_string().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(next(&mut from_text).await.event, created(3));

    // A live subscription starts after the newest event, then continues like the others.
    let mut live = bus.subscribe().await.unwrap();
    bus.publish(&created(4)).await.unwrap();
    assert_eq!(next(&mut live).await.event, created(4));
    assert_eq!(next(&mut from_p1).await.event, created(4));
    redis.cleanup().await;
}

#[tokio::test]
async fn redis_subscriber_behind_a_trimmed_stream_gets_lagged() {
    let Some(redis) = common::redis("bus-trimmed").await else {
        return;
    };
    let options = RedisBusOptions {
        max_len: 10,
        batch: 10,
        ..RedisBusOptions::default()
    };
    let bus = Bus::redis_with(&redis.url, &redis.prefix, options)
        .await
        .unwrap();
    let mut last = None;
    for seq in 1..=300 {
        last = bus.publish(&created(seq)).await.unwrap();
    }
    let last = last.unwrap();
    assert_eq!(last.number(), 300);
    let mut sub = bus.subscribe_from(Position::ORIGIN).await.unwrap();
    let missed = match common::within("lag report", sub.next()).await {
        Err(BusError::Lagged {
            missed: Some(n),
            durable: true,
        }) => n,
        other => panic!("expected Lagged, got {other:?}"),
    };
    // Then the retained tail, in order, up to the newest.
    let mut seqs = Vec::new();
    loop {
        let e = next(&mut sub).await;
        let Event::MessageCreated { message } = &e.event else {
            panic!("unexpected {e:?}")
        };
        seqs.push(message.seq);
        if e.position == Some(last) {
            break;
        }
    }
    // Exactly the trimmed ones were reported missing; the rest came, in order.
    assert!(missed > 0 && missed < 300);
    assert_eq!(seqs.first(), Some(&(missed as i64 + 1)));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(seqs.last(), Some(&300));
    // A subscriber that is not behind is not told anything.
    let mut fresh = bus.subscribe().await.unwrap();
    bus.publish(&created(301)).await.unwrap();
    assert_eq!(next(&mut fresh).await.event, created(301));

    assert!(matches!(
        Bus::redis_with(
            &redis.url,
            &redis.prefix,
            RedisBusOptions {
                max_len: 0,
                ..RedisBusOptions::default()
            }
        )
        .await,
        Err(BusError::Config(_))
    ));
    redis.cleanup().await;
}

/// A TCP proxy to Redis whose connections the test can cut, and refuse for a while.
struct Proxy {
    addr: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let upstream = upstream.to_owned();
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: connection refused in effect
                    }
                    let upstream = upstream.clone();
                    conns.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            }
        });
        Proxy {
            addr,
            up,
            conns,
            accept,
        }
    }

    /// Drops every proxied connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn redis_node_catches_up_after_a_brief_disconnect() {
    let Some(redis) = common::redis("bus-reconnect").await else {
        return;
    };
    let url: url_parts::Parts = url_parts::parse(&redis.url);
    let proxy = Proxy::start(&url.host_port).await;
    let via_proxy = url.with_host_port(&proxy.addr);

    let publisher = Bus::redis(&redis.url, &redis.prefix).await.unwrap();
    let node = Bus::redis(&via_proxy, &redis.prefix).await.unwrap();
    let mut sub = node.subscribe().await.unwrap();
    publisher.publish(&created(1)).await.unwrap();
    assert_eq!(next(&mut sub).await.event, created(1));

    proxy.cut();
    // Published while the node is cut off.
    publisher.publish(&created(2)).await.unwrap();
    publisher.publish(&created(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.restore();
    publisher.publish(&created(4)).await.unwrap();

    // Nothing lost, nothing twice, in order.
    for seq in 2..=4 {
        assert_eq!(next(&mut sub).await.event, created(seq));
    }
    // Ephemeral events flow again once pub/sub has resubscribed (those sent before are lost).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no ephemeral event after reconnect"
        );
        publisher.publish(&typing(9)).await.unwrap();
        if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {
            assert_eq!(e.event, typing(9));
            break;
        }
    }
    redis.cleanup().await;
}

/// Just enough URL handling for `redis://host:port[/db]`.
mod url_parts {
    pub struct Parts {
        scheme_auth: String,
        pub host_port: String,
        rest: String,
    }

    pub fn parse(url: &str) -> Parts {
        let (scheme, after) = url.split_once("://").expect("redis://… URL");
        let (authority, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let (auth, host_port) = match authority.rsplit_once('@') {
            Some((auth, hp)) => (format!("{auth}@"), hp),
            None => (String::new(), authority),
        };
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:6379")
        };
        Parts {
            scheme_auth: format!("{scheme}://{auth}"),
            host_port,
            rest: rest.to_owned(),
        }
    }

    impl Parts {
        pub fn with_host_port(&self, host_port: &str) -> String {
            format!("{}{}{}", self.scheme_auth, host_port, self.rest)
        }
    }
}
