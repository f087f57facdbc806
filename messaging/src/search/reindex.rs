//! Bringing the search index up to date from the store: at start when the bus keeps no
//! history (in-process), and whenever the indexer learns that the bus lost durable events, so
//! the index never stays without a message that was stored.

use super::{SearchError, SearchIndex};
use crate::bus::Event;
use crate::{Store, StoreError};

/// Applies the whole store to the search index (idempotent: each document is replaced by
/// key) and commits; returns how many messages it applied.
pub async fn reindex(store: &Store, search: &SearchIndex) -> Result<usize, SearchError> {
    let started = std::time::Instant::now();
    let apply = |e: Event| search.apply(&e).map(|_| ());
    each_page(
        |a| store.export_users(a),
        |u| u.id.0,
        |u| {
            apply(Event::UserChanged {
                user: u.id,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
            })
        },
    )
    .await?;
    each_page(
        |a| store.export_chats(a),
        |c| c.id.0,
        |c| {
            apply(Event::ChatChanged {
                chat: c.id,
                members: Vec::new(),
                title: c.title.clone(),
            })
        },
    )
    .await?;
    let messages = each_page(
        |a| store.export_messages(a),
        |m| m.id.0,
        |m| apply(Event::MessageCreated { message: m.clone() }),
    )
    .await?;
    let index = search.clone();
    tokio::task::spawn_blocking(move || index.commit())
        .await
        .map_err(|e| SearchError::Task(e.to_string()))??;
    tracing::info!(
        messages,
        ms = started.elapsed().as_millis() as u64,
        "search index brought up to date from the store"
    );
    Ok(messages)
}

/// Walks an export page by page (`fetch(after)` by ascending `id`), applying each item;
/// returns how many there were.
async fn each_page<T, Fut>(
    fetch: impl Fn(i64) -> Fut,
    id: impl Fn(&T) -> i64,
    mut apply: impl FnMut(&T) -> Result<(), SearchError>,
) -> Result<usize, SearchError>
where
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let (mut after, mut n) = (0, 0);
    loop {
        let page = fetch(after).await?;
        for item in &page {
            apply(item)?;
        }
        n += page.len();
        match page.last() {
            Some(last) => after = id(last),
            None => return Ok(n),
        }
    }
}
