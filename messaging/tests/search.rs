//! Search: word forms (Russian, English), visibility (members now, file owners and shares),
//! deletes and edits, odd queries, a directory index across reopen, and the indexer following
//! a bus (in-process; and on Redis, resuming after a restart). Redis: see
//! `tests/common/mod.rs` (`GAX_TEST_REDIS_URL`, `skip`).

mod common;

use std::time::Duration;

use messaging::search::LIMIT_MAX;
use messaging::{
    Bus, ChatId, Event, HashCost, Hit, Indexer, IndexerOptions, Item, Message, MessageId,
    NewMessage, SearchIndex, Store, StoreConfig, UserId, Viewer,
};

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const EVE: UserId = UserId(3);
const CHAT: ChatId = ChatId(10);
const OTHER_CHAT: ChatId = ChatId(20);

fn message(id: i64, chat: ChatId, seq: i64, text: &str) -> Message {
    Message {
        id: MessageId(id),
        chat,
        seq,
        sender: ALICE,
        text: Some(text.into()),
        attachments: vec![],
        client_key: None,
        created_at: 1_700_000_000_000,
        edited_at: None,
        deleted_at: None,
    }
}

fn viewer(user: UserId, chats: &[ChatId]) -> Viewer {
    Viewer {
        user,
        chats: chats.to_vec(),
    }
}

fn index_with(events: &[Event]) -> SearchIndex {
    let index = SearchIndex::in_ram().unwrap();
    for e in events {
        index.apply(e).unwrap();
    }
    index.commit().unwrap();
    index
}

fn items(hits: &[Hit]) -> Vec<Item> {
    hits.iter().map(|h| h.item.clone()).collect()
}

fn found(index: &SearchIndex, viewer: &Viewer, query: &str) -> Vec<Item> {
    items(&index.search(viewer, query, 20).unwrap())
}

fn message_item(id: i64, chat: ChatId, seq: i64) -> Item {
    Item::Message {
        message: MessageId(id),
        chat,
        seq,
        sender: ALICE,
    }
}

#[test]
fn russian_word_forms_match() {
    let index = index_with(&[Event::MessageCreated {
        message: message(1, CHAT, 1, "Мы встретимся завтра в библиотеке"),
    }]);
    let alice = viewer(ALICE, &[CHAT]);
    let hits = index.search(&alice, "библиотека", 10).unwrap();
    assert_eq!(items(&hits), [message_item(1, CHAT, 1)]);
    // The snippet marks the word as written in the message.
    let s = &hits[0].snippet;
    assert_eq!(s.highlights.len(), 1);
    assert_eq!(&s.text[s.highlights[0].clone()], "библиотеке");
    assert!(hits[0].score > 0.0);
    for q in ["БИБЛИОТЕКИ", "встретиться завтра", "библиотекой"]
    {
        assert_eq!(found(&index, &alice, q), [message_item(1, CHAT, 1)], "{q}");
    }
    // Every word must match.
    assert!(found(&index, &alice, "библиотека театр").is_empty());
}

#[test]
fn english_word_forms_match() {
    let index = index_with(&[
        Event::MessageCreated {
            message: message(1, CHAT, 1, "Running meetings is hard"),
        },
        Event::MessageCreated {
            message: message(2, CHAT, 2, "lunch at noon"),
        },
    ]);
    let alice = viewer(ALICE, &[CHAT]);
    for q in ["meeting", "run", "RUNS", "meet runner"] {
        let expected = if q == "meet runner" {
            vec![] // "runner" stems to itself, not "run"
        } else {
            vec![message_item(1, CHAT, 1)]
        };
        assert_eq!(found(&index, &alice, q), expected, "{q}");
    }
    let hits = index.search(&alice, "meeting", 10).unwrap();
    let s = &hits[0].snippet;
    assert_eq!(&s.text[s.highlights[0].clone()], "meetings");
}

#[test]
fn messages_and_chats_only_for_members_now() {
    let index = index_with(&[
        Event::ChatChanged {
            chat: CHAT,
            members: vec![ALICE, BOB],
            title: Some("Secret garden club".into()),
        },
        Event::MessageCreated {
            message: message(1, CHAT, 1, "the treasure is under the oak"),
        },
        Event::MessageCreated {
            message: message(2, OTHER_CHAT, 1, "treasure hunt tomorrow"),
        },
    ]);
    let bob = viewer(BOB, &[CHAT]);
    assert_eq!(
        found(&index, &bob, "treasure oak"),
        [message_item(1, CHAT, 1)]
    );
    assert_eq!(found(&index, &bob, "garden"), [Item::Chat { chat: CHAT }]);
    // Eve searches the exact words of a chat she is not in: nothing.
    let eve = viewer(EVE, &[OTHER_CHAT]);
    assert!(found(&index, &eve, "the treasure is under the oak").is_empty());
    assert!(found(&index, &eve, "Secret garden club").is_empty());
    assert_eq!(
        found(&index, &eve, "treasure"),
        [message_item(2, OTHER_CHAT, 1)]
    );
    assert!(found(&index, &viewer(EVE, &[]), "treasure").is_empty());
    // Bob leaves the chat: his chats now no longer include it, and he sees nothing of it.
    let bob_after = viewer(BOB, &[]);
    assert!(found(&index, &bob_after, "treasure").is_empty());
    assert!(found(&index, &bob_after, "garden").is_empty());
}

#[test]
fn deleted_messages_vanish_and_edits_are_reindexed() {
    let mut edited = message(1, CHAT, 1, "see you at the station");
    let index = index_with(&[
        Event::MessageCreated {
            message: edited.clone(),
        },
        Event::MessageCreated {
            message: message(2, CHAT, 2, "the station is closed"),
        },
    ]);
    let alice = viewer(ALICE, &[CHAT]);
    assert_eq!(found(&index, &alice, "station").len(), 2);

    edited.text = Some("see you at the airport".into());
    edited.edited_at = Some(1_700_000_000_500);
    index
        .apply(&Event::MessageEdited {
            message: edited.clone(),
        })
        .unwrap();
    index
        .apply(&Event::MessageDeleted {
            chat: CHAT,
            seq: 2,
            message: MessageId(2),
        })
        .unwrap();
    // Not visible before the commit, then at once.
    assert_eq!(found(&index, &alice, "station").len(), 2);
    index.commit().unwrap();
    assert!(found(&index, &alice, "station").is_empty());
    assert!(found(&index, &alice, "closed").is_empty());
    assert_eq!(found(&index, &alice, "airport"), [message_item(1, CHAT, 1)]);

    // An edit that arrives as a tombstone removes it too.
    edited.text = None;
    edited.deleted_at = Some(1_700_000_001_000);
    index
        .apply(&Event::MessageEdited { message: edited })
        .unwrap();
    index.commit().unwrap();
    assert!(found(&index, &alice, "airport").is_empty());
}

#[test]
fn users_for_everyone_files_for_owner_and_shared_chats() {
    let index = index_with(&[
        Event::UserChanged {
            user: BOB,
            username: "bob_builder".into(),
            display_name: "Роберт Строитель".into(),
        },
        Event::FileAdded {
            file_id: "f-1".into(),
            owner: ALICE,
            name: "quarterly_report-2024.pdf".into(),
            chats: vec![],
        },
        Event::FileAdded {
            file_id: "f-2".into(),
            owner: ALICE,
            name: "holiday photos.zip".into(),
            chats: vec![CHAT, OTHER_CHAT],
        },
        Event::Typing {
            chat: CHAT,
            user: ALICE,
        },
    ]);
    let eve = viewer(EVE, &[]);
    assert_eq!(found(&index, &eve, "bob"), [Item::User { user: BOB }]);
    assert_eq!(found(&index, &eve, "строитель"), [Item::User { user: BOB }]);
    assert!(found(&index, &eve, "report").is_empty());
    assert!(found(&index, &eve, "photos").is_empty());

    let alice = viewer(ALICE, &[]);
    let report = Item::File {
        file_id: "f-1".into(),
        owner: ALICE,
    };
    assert_eq!(found(&index, &alice, "reports 2024"), [report]);
    let photos = Item::File {
        file_id: "f-2".into(),
        owner: ALICE,
    };
    assert_eq!(
        found(&index, &alice, "photo"),
        std::slice::from_ref(&photos)
    );
    assert_eq!(
        found(&index, &viewer(BOB, &[OTHER_CHAT]), "holiday"),
        [photos]
    );
    assert!(found(&index, &viewer(BOB, &[ChatId(99)]), "holiday").is_empty());

    // A profile change replaces the user, a removed file disappears.
    index
        .apply(&Event::UserChanged {
            user: BOB,
            username: "bob_builder".into(),
            display_name: "Bob".into(),
        })
        .unwrap();
    index
        .apply(&Event::FileRemoved {
            file_id: "f-1".into(),
        })
        .unwrap();
    index.commit().unwrap();
    assert!(found(&index, &eve, "строитель").is_empty());
    assert_eq!(found(&index, &eve, "bob"), [Item::User { user: BOB }]);
    assert!(found(&index, &alice, "report").is_empty());
}

#[test]
fn odd_queries_give_empty_results_not_errors() {
    let index = index_with(&[
        Event::MessageCreated {
            message: message(1, CHAT, 1, "and or not"),
        },
        Event::MessageCreated {
            message: message(2, OTHER_CHAT, 1, "plain words, title foo 1 2"),
        },
    ]);
    let bob = viewer(BOB, &[OTHER_CHAT]);
    let long = "a".repeat(100_000);
    let many_words: String = (0..1000).map(|i| format!("w{i} ")).collect();
    let odd = [
        "",
        "   ",
        "\"((",
        "AND OR",
        "*",
        "author:nobody",
        "-",
        "\\",
        "🦀🦀",
        "\u{0}",
        "[1 TO 2]",
        long.as_str(),
        many_words.as_str(),
        "ж".repeat(600).as_str(), // cut mid-character at the byte limit
    ]
    .map(str::to_owned);
    for q in &odd {
        let hits = index.search(&bob, q, 10).unwrap();
        assert!(hits.is_empty(), "{q:?}: {hits:?}");
    }
    // Query syntax elsewhere is just words here: "title:foo" is the words "title" and "foo"
    // (no field named title), "[1 TO 2]" needs a "to", "AND OR" are words like any other.
    assert_eq!(
        found(&index, &bob, "title:foo 1 (2)"),
        [message_item(2, OTHER_CHAT, 1)]
    );
    let alice = viewer(ALICE, &[CHAT]);
    assert_eq!(found(&index, &alice, "and OR"), [message_item(1, CHAT, 1)]);
    assert!(index.search(&alice, "and", 0).unwrap().is_empty());
    assert_eq!(index.search(&alice, "and", usize::MAX).unwrap().len(), 1);
}

#[test]
fn limit_is_clamped() {
    let users: Vec<Event> = (1..=LIMIT_MAX as i64 + 5)
        .map(|i| Event::UserChanged {
            user: UserId(i),
            username: format!("user{i}"),
            display_name: format!("Tester {i}"),
        })
        .collect();
    let index = index_with(&users);
    let anyone = viewer(EVE, &[]);
    assert_eq!(
        index.search(&anyone, "tester", usize::MAX).unwrap().len(),
        LIMIT_MAX
    );
    assert_eq!(index.search(&anyone, "tester", 3).unwrap().len(), 3);
}

#[test]
fn directory_index_survives_reopen_with_its_position() {
    let dir = std::env::temp_dir().join(format!("gax-search-{}", common::random_hex()));
    {
        let index = SearchIndex::open_in_dir(&dir.join("search")).unwrap();
        assert_eq!(index.committed_position().unwrap(), None);
        index
            .apply(&Event::MessageCreated {
                message: message(1, CHAT, 1, "persistent words"),
            })
            .unwrap();
        index.commit().unwrap();
    }
    let index = SearchIndex::open_in_dir(&dir.join("search")).unwrap();
    assert_eq!(
        found(&index, &viewer(ALICE, &[CHAT]), "word"),
        [message_item(1, CHAT, 1)]
    );
    drop(index);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Polls the index (never a fixed sleep) until `query` finds `expected`, within 1 s.
async fn searchable_within_1s(index: &SearchIndex, viewer: &Viewer, query: &str, expected: Item) {
    common::eventually(
        &format!("{query:?} searchable"),
        Duration::from_secs(1),
        || async {
            found(index, viewer, query)
                .contains(&expected)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn indexer_makes_a_published_message_searchable_within_a_second() {
    let bus = Bus::in_process();
    let index = SearchIndex::in_ram().unwrap();
    let indexer = Indexer::start(index.clone(), &bus).await.unwrap();
    let alice = viewer(ALICE, &[CHAT]);
    bus.publish(&Event::MessageCreated {
        message: message(7, CHAT, 3, "Мы встретимся завтра в библиотеке"),
    })
    .await
    .unwrap();
    searchable_within_1s(&index, &alice, "библиотека", message_item(7, CHAT, 3)).await;

    bus.publish(&Event::MessageDeleted {
        chat: CHAT,
        seq: 3,
        message: MessageId(7),
    })
    .await
    .unwrap();
    common::eventually("deleted message gone", Duration::from_secs(1), || async {
        found(&index, &alice, "библиотека").is_empty().then_some(())
    })
    .await;
    indexer.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_store_a_member_finds_and_a_stranger_does_not() {
    let dir = std::env::temp_dir().join(format!("gax-search-{}", common::random_hex()));
    let config = StoreConfig {
        hash_cost: HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..StoreConfig::default()
    };
    let store = Store::connect_with(&dir.join("m.db").display().to_string(), config)
        .await
        .unwrap();
    let alice = store.register("alice", "alice-password").await.unwrap().id;
    let bob = store.register("bob", "bob-password").await.unwrap().id;
    let eve = store.register("eve", "eve-password").await.unwrap().id;
    let group = store.create_group(alice, "Planning", &[bob]).await.unwrap();

    let bus = Bus::in_process();
    let index = SearchIndex::in_ram().unwrap();
    let indexer = Indexer::start_with(
        index.clone(),
        &bus,
        IndexerOptions {
            commit_every: Duration::from_millis(50),
            ..IndexerOptions::default()
        },
    )
    .await
    .unwrap();
    let sent = store
        .send_message(
            alice,
            group.id,
            NewMessage::text("quarterly planning meetings"),
        )
        .await
        .unwrap();
    bus.publish(&Event::MessageCreated {
        message: sent.message.clone(),
    })
    .await
    .unwrap();
    let hit = Item::Message {
        message: sent.message.id,
        chat: group.id,
        seq: sent.message.seq,
        sender: alice,
    };
    let bob_now = Viewer::load(&store, bob).await.unwrap();
    searchable_within_1s(&index, &bob_now, "meeting", hit.clone()).await;
    let eve_now = Viewer::load(&store, eve).await.unwrap();
    assert!(found(&index, &eve_now, "quarterly planning meetings").is_empty());

    store.leave_chat(bob, group.id).await.unwrap();
    let bob_after = Viewer::load(&store, bob).await.unwrap();
    assert!(found(&index, &bob_after, "meeting").is_empty());
    indexer.stop().await.unwrap();
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A bus that loses durable events (here: an in-process channel of 2, flooded before the
/// indexer runs) does not leave the index without them: the indexer catches up from the store.
#[tokio::test(flavor = "current_thread")]
async fn an_indexer_that_lost_durable_events_catches_up_from_the_store() {
    let dir = std::env::temp_dir().join(format!("gax-search-{}", common::random_hex()));
    let config = StoreConfig {
        hash_cost: HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..StoreConfig::default()
    };
    let store = Store::connect_with(&dir.join("m.db").display().to_string(), config)
        .await
        .unwrap();
    let alice = store.register("alice", "alice-password").await.unwrap().id;
    let group = store.create_group(alice, "Notes", &[]).await.unwrap();
    let bus = Bus::in_process_with_capacity(2);
    let index = SearchIndex::in_ram().unwrap();
    let indexer = Indexer::start_with(
        index.clone(),
        &bus,
        IndexerOptions {
            commit_every: Duration::from_millis(50),
            catch_up: Some(store.clone()),
        },
    )
    .await
    .unwrap();
    let mut sent = Vec::new();
    for i in 0..20 {
        let text = format!("entry{i} zebra");
        let m = store
            .send_message(alice, group.id, NewMessage::text(text))
            .await
            .unwrap()
            .message;
        sent.push(m);
    }
    // On this one thread the indexer cannot run while the loop publishes (an in-process publish
    // never waits): 20 events into a channel of 2, so it loses 18 of them.
    for m in sent {
        bus.publish(&Event::MessageCreated { message: m })
            .await
            .unwrap();
    }
    let me = Viewer::load(&store, alice).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if found(&index, &me, "zebra").len() == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 20 found",
            found(&index, &me, "zebra").len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    indexer.stop().await.unwrap();
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn redis_indexer_resumes_after_a_restart() {
    let Some(redis) = common::redis("search-resume").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("gax-search-{}", common::random_hex()));
    let bus = Bus::redis(&redis.url, &redis.prefix).await.unwrap();
    let alice = viewer(ALICE, &[CHAT]);

    let index = SearchIndex::open_in_dir(&dir).unwrap();
    let indexer = Indexer::start(index.clone(), &bus).await.unwrap();
    let first = bus
        .publish(&Event::MessageCreated {
            message: message(1, CHAT, 1, "first words"),
        })
        .await
        .unwrap();
    searchable_within_1s(&index, &alice, "first", message_item(1, CHAT, 1)).await;
    indexer.stop().await.unwrap();
    assert_eq!(index.committed_position().unwrap(), first);
    drop(index);

    // Published while no indexer runs.
    bus.publish(&Event::MessageCreated {
        message: message(2, CHAT, 2, "second words"),
    })
    .await
    .unwrap();

    let index = SearchIndex::open_in_dir(&dir).unwrap();
    let indexer = Indexer::start(index.clone(), &bus).await.unwrap();
    searchable_within_1s(&index, &alice, "second", message_item(2, CHAT, 2)).await;
    assert_eq!(found(&index, &alice, "words").len(), 2);
    indexer.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    redis.cleanup().await;
}
