//! Full-text search over users, chats, messages and files, with English and Russian
//! stemming, that only ever shows a user what they may see.
//!
//! [`SearchIndex`] is a tantivy index (in a directory, or in RAM for tests) of four kinds of
//! documents: users (username and display name), group chats (title), messages (text) and
//! files (name). Each text is indexed twice, once through an English stemmer and once through
//! a Russian one, and each query word matches either form ("библиотека" finds "библиотеке",
//! "meeting" finds "meetings"). A query is a plain list of words, all of which must match;
//! there is no query syntax, so any input (empty, `"((`, `AND OR`) is just words or nothing.
//!
//! Visibility is decided at query time from the [`Viewer`]: the searching user and the chats
//! they are a member of *now* (the caller passes them, e.g. from [`Store::list_chats`] via
//! [`Viewer::load`]). Chats and messages are found only in those chats, files only if the
//! viewer owns them or they were shared in one of those chats, users by everyone. Leaving a
//! chat therefore hides its messages at once, with no re-indexing.
//!
//! The index follows the [`Bus`]: [`SearchIndex::apply`] turns a durable [`Event`] into
//! index changes (a deleted message is removed, an edited one replaced), and the [`Indexer`]
//! task applies every event from a subscription and commits at least every
//! [`DEFAULT_COMMIT_EVERY`] (200 ms), reloading the reader after each commit, so a new message
//! is searchable well within a second. Each commit records the bus [`Position`] it reached;
//! on a Redis bus, a restarted indexer resumes from there.
//!
//! [`Store::list_chats`]: crate::Store::list_chats

pub mod reindex;

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, INDEXED, STORED,
    STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::bus::{Bus, BusError, Envelope, Event, Position};
use crate::error::StoreError;
use crate::store::{ChatId, MessageId, Store, UserId};

/// Most hits one search returns.
pub const LIMIT_MAX: usize = 100;
/// Words of a query beyond this many are ignored.
pub const QUERY_WORDS_MAX: usize = 16;
/// How often the [`Indexer`] commits pending changes.
pub const DEFAULT_COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Longest token indexed (longer ones are noise such as base64).
const TOKEN_MAX_BYTES: usize = 64;
/// Query input beyond this many bytes is ignored.
const QUERY_MAX_BYTES: usize = 1024;
const WRITER_MEMORY: usize = 32 * 1024 * 1024;

const TOKENIZER_EN: &str = "gax_en";
const TOKENIZER_RU: &str = "gax_ru";

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open the index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error("the indexer task failed: {0}")]
    Task(String),
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
}

/// Who is searching: the user and the chats they are a member of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user: UserId,
    pub chats: Vec<ChatId>,
}

impl Viewer {
    /// The viewer `user` with their current chats from the store.
    pub async fn load(store: &Store, user: UserId) -> Result<Viewer, StoreError> {
        let chats = store
            .list_chats(user)
            .await?
            .into_iter()
            .map(|summary| summary.chat.id)
            .collect();
        Ok(Viewer { user, chats })
    }
}

/// What a hit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    User {
        user: UserId,
    },
    Chat {
        chat: ChatId,
    },
    Message {
        message: MessageId,
        chat: ChatId,
        seq: i64,
        sender: UserId,
    },
    File {
        file_id: String,
        owner: UserId,
    },
}

/// A piece of the matched text with the matched words marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub text: String,
    /// Byte ranges of `text` that matched the query.
    pub highlights: Vec<Range<usize>>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub item: Item,
    /// Relevance (BM25); higher is better. Hits come sorted by it.
    pub score: f32,
    pub snippet: Snippet,
}

#[derive(Clone, Copy)]
struct Fields {
    /// "user" | "chat" | "message" | "file"
    kind: Field,
    /// One per item, to replace or delete it: "u:<id>", "c:<id>", "m:<id>", "f:<id>".
    key: Field,
    /// The original text (stored, for snippets).
    text: Field,
    en: Field,
    ru: Field,
    /// Users.
    user: Field,
    /// Chats, messages; files (once per chat shared in).
    chat: Field,
    /// Files.
    owner: Field,
    file_id: Field,
    /// Messages.
    message: Field,
    seq: Field,
    sender: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let stemmed = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        kind: b.add_text_field("kind", STRING | STORED),
        key: b.add_text_field("key", STRING),
        text: b.add_text_field("text", STORED),
        en: b.add_text_field("en", stemmed(TOKENIZER_EN)),
        ru: b.add_text_field("ru", stemmed(TOKENIZER_RU)),
        user: b.add_i64_field("user", STORED),
        chat: b.add_i64_field("chat", INDEXED | STORED),
        owner: b.add_i64_field("owner", INDEXED | STORED),
        file_id: b.add_text_field("file_id", STORED),
        message: b.add_i64_field("message", STORED),
        seq: b.add_i64_field("seq", STORED),
        sender: b.add_i64_field("sender", STORED),
    };
    (b.build(), fields)
}

/// Words: split on anything not alphanumeric, long tokens dropped, lowercased.
fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(TOKEN_MAX_BYTES))
        .filter(LowerCaser)
        .build()
}

fn stemming_analyzer(language: Language) -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(TOKEN_MAX_BYTES))
        .filter(LowerCaser)
        .filter(Stemmer::new(language))
        .build()
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// The searchable index; cheap to clone (clones share one index, one writer, one reader).
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<Writer>,
    fields: Fields,
}

struct Writer {
    writer: IndexWriter,
    /// Bus position of the last applied envelope, saved with the next commit.
    position: Option<Position>,
    /// Changes since the last commit?
    dirty: bool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in directory `dir` (created if missing), e.g. `<data dir>/search`.
    /// One process at a time may hold it. An index made by an incompatible version fails
    /// to open; delete the directory and let the indexer rebuild it.
    pub fn open_in_dir(dir: &Path) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let index = Index::open_or_create(MmapDirectory::open(dir)?, schema)?;
        SearchIndex::from_index(index, fields)
    }

    /// A fresh index in memory (tests, or nodes that rebuild on start).
    pub fn in_ram() -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        SearchIndex::from_index(Index::create_in_ram(schema), fields)
    }

    fn from_index(index: Index, fields: Fields) -> Result<SearchIndex, SearchError> {
        let tokenizers = index.tokenizers();
        tokenizers.register(TOKENIZER_EN, stemming_analyzer(Language::English));
        tokenizers.register(TOKENIZER_RU, stemming_analyzer(Language::Russian));
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        // Reloaded by `commit`, which is the only way documents change.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(Writer {
                    writer,
                    position: None,
                    dirty: false,
                }),
                fields,
            }),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bus position recorded by the last commit, if any.
    pub fn committed_position(&self) -> Result<Option<Position>, SearchError> {
        let metas = self.inner.index.load_metas()?;
        Ok(metas.payload.and_then(|p| p.parse().ok()))
    }

    /// Applies one event (ephemeral ones change nothing); visible after the next
    /// [`SearchIndex::commit`]. Returns whether the index changed.
    pub fn apply(&self, event: &Event) -> Result<bool, SearchError> {
        let f = self.inner.fields;
        let mut w = self.writer();
        let changed = match event {
            Event::MessageCreated { message } | Event::MessageEdited { message } => {
                let key = format!("m:{}", message.id);
                w.writer.delete_term(Term::from_field_text(f.key, &key));
                if let (Some(text), false) = (&message.text, message.is_deleted()) {
                    let mut doc = document(&f, "message", &key, text);
                    doc.add_i64(f.chat, message.chat.0);
                    doc.add_i64(f.message, message.id.0);
                    doc.add_i64(f.seq, message.seq);
                    doc.add_i64(f.sender, message.sender.0);
                    w.writer.add_document(doc)?;
                }
                true
            }
            Event::MessageDeleted { message, .. } => {
                w.writer
                    .delete_term(Term::from_field_text(f.key, &format!("m:{message}")));
                true
            }
            Event::ChatChanged { chat, title, .. } => {
                let key = format!("c:{chat}");
                w.writer.delete_term(Term::from_field_text(f.key, &key));
                if let Some(title) = title.as_deref().filter(|t| !t.trim().is_empty()) {
                    let mut doc = document(&f, "chat", &key, title);
                    doc.add_i64(f.chat, chat.0);
                    w.writer.add_document(doc)?;
                }
                true
            }
            Event::UserChanged {
                user,
                username,
                display_name,
            } => {
                let key = format!("u:{user}");
                w.writer.delete_term(Term::from_field_text(f.key, &key));
                let mut doc = document(&f, "user", &key, &format!("{display_name} @{username}"));
                doc.add_i64(f.user, user.0);
                w.writer.add_document(doc)?;
                true
            }
            Event::FileAdded {
                file_id,
                owner,
                name,
                chats,
            } => {
                let key = format!("f:{file_id}");
                w.writer.delete_term(Term::from_field_text(f.key, &key));
                let mut doc = document(&f, "file", &key, name);
                doc.add_text(f.file_id, file_id);
                doc.add_i64(f.owner, owner.0);
                for chat in chats {
                    doc.add_i64(f.chat, chat.0);
                }
                w.writer.add_document(doc)?;
                true
            }
            Event::FileRemoved { file_id } => {
                w.writer
                    .delete_term(Term::from_field_text(f.key, &format!("f:{file_id}")));
                true
            }
            Event::Typing { .. }
            | Event::ReadUpTo { .. }
            | Event::Presence { .. }
            | Event::FriendsChanged { .. }
            | Event::Watch { .. } => false,
        };
        w.dirty |= changed;
        Ok(changed)
    }

    /// [`SearchIndex::apply`] for a bus delivery, remembering its position for the next commit.
    pub fn apply_envelope(&self, envelope: &Envelope) -> Result<bool, SearchError> {
        let changed = self.apply(&envelope.event)?;
        if let Some(position) = envelope.position {
            let mut w = self.writer();
            w.position = Some(position);
            w.dirty = true;
        }
        Ok(changed)
    }

    /// Makes every applied change durable (directory index) and searchable. Blocks for a few
    /// milliseconds: from async code, call it in `spawn_blocking` (the [`Indexer`] does).
    pub fn commit(&self) -> Result<(), SearchError> {
        let mut w = self.writer();
        if !w.dirty {
            return Ok(());
        }
        let position = w.position;
        let mut prepared = w.writer.prepare_commit()?;
        if let Some(position) = position {
            prepared.set_payload(&position.to_string());
        }
        prepared.commit()?;
        w.dirty = false;
        drop(w);
        self.inner.reader.reload()?;
        Ok(())
    }

    /// Up to `limit` (at most [`LIMIT_MAX`]) hits for `query` that `viewer` may see, best
    /// first. Every word of the query must match (in any word form). A query without words
    /// gives no hits. Takes about a millisecond; from async code, prefer `spawn_blocking`
    /// for large indexes.
    pub fn search(
        &self,
        viewer: &Viewer,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let limit = limit.min(LIMIT_MAX);
        let Some(text_query) = self.text_query(query) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.inner.fields;
        let mut visible: Vec<(Occur, Box<dyn Query>)> = vec![
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.kind, "user"),
                    IndexRecordOption::Basic,
                )),
            ),
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_i64(f.owner, viewer.user.0),
                    IndexRecordOption::Basic,
                )),
            ),
        ];
        if !viewer.chats.is_empty() {
            visible.push((
                Occur::Should,
                Box::new(TermSetQuery::new(
                    viewer
                        .chats
                        .iter()
                        .map(|c| Term::from_field_i64(f.chat, c.0)),
                )),
            ));
        }
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(text_query.clone())),
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(BooleanQuery::new(visible)),
                    0.0,
                )),
            ),
        ]);

        let searcher = self.inner.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        if top.is_empty() {
            return Ok(Vec::new());
        }
        let snippets_en = SnippetGenerator::create(&searcher, &text_query, f.en)?;
        let snippets_ru = SnippetGenerator::create(&searcher, &text_query, f.ru)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let Some(item) = item_of(&f, &doc) else {
                continue; // not one of ours: skip rather than fail
            };
            let text = doc
                .get_first(f.text)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let snippet = [&snippets_en, &snippets_ru]
                .into_iter()
                .map(|g| g.snippet(text))
                .find(|s| !s.highlighted().is_empty())
                .map(|s| Snippet {
                    text: s.fragment().to_owned(),
                    highlights: s.highlighted().to_vec(),
                })
                .unwrap_or_else(|| Snippet {
                    text: text.chars().take(150).collect(),
                    highlights: Vec::new(),
                });
            hits.push(Hit {
                item,
                score,
                snippet,
            });
        }
        Ok(hits)
    }

    /// All words of `query` must match, each in its English or its Russian form. `None`
    /// when the query has no words.
    fn text_query(&self, query: &str) -> Option<BooleanQuery> {
        let f = self.inner.fields;
        let mut end = query.len().min(QUERY_MAX_BYTES);
        while !query.is_char_boundary(end) {
            end -= 1;
        }
        let mut words = tokens(&mut words_analyzer(), &query[..end]);
        let mut seen = std::collections::HashSet::new();
        words.retain(|w| seen.insert(w.clone()));
        words.truncate(QUERY_WORDS_MAX);
        if words.is_empty() {
            return None;
        }
        let mut en = stemming_analyzer(Language::English);
        let mut ru = stemming_analyzer(Language::Russian);
        let clauses = words
            .iter()
            .map(|word| {
                let mut forms: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for (field, analyzer) in [(f.en, &mut en), (f.ru, &mut ru)] {
                    for stem in tokens(analyzer, word) {
                        forms.push((
                            Occur::Should,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, &stem),
                                IndexRecordOption::WithFreqs,
                            )),
                        ));
                    }
                }
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(forms)) as Box<dyn Query>,
                )
            })
            .collect();
        Some(BooleanQuery::new(clauses))
    }
}

/// A document of `kind` with its key and text (indexed in both languages).
fn document(f: &Fields, kind: &str, key: &str, text: &str) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.kind, kind);
    doc.add_text(f.key, key);
    doc.add_text(f.text, text);
    doc.add_text(f.en, text);
    doc.add_text(f.ru, text);
    doc
}

fn item_of(f: &Fields, doc: &TantivyDocument) -> Option<Item> {
    let int = |field| doc.get_first(field).and_then(|v| v.as_i64());
    match doc.get_first(f.kind).and_then(|v| v.as_str())? {
        "user" => Some(Item::User {
            user: UserId(int(f.user)?),
        }),
        "chat" => Some(Item::Chat {
            chat: ChatId(int(f.chat)?),
        }),
        "message" => Some(Item::Message {
            message: MessageId(int(f.message)?),
            chat: ChatId(int(f.chat)?),
            seq: int(f.seq)?,
            sender: UserId(int(f.sender)?),
        }),
        "file" => Some(Item::File {
            file_id: doc.get_first(f.file_id)?.as_str()?.to_owned(),
            owner: UserId(int(f.owner)?),
        }),
        _ => None,
    }
}

/// Settings of the [`Indexer`].
#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// Longest time an applied event waits for its commit.
    pub commit_every: Duration,
    /// Where to catch up from when the bus lost durable events ([`reindex`]); `None`:
    /// the loss is only logged.
    pub catch_up: Option<Store>,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            commit_every: DEFAULT_COMMIT_EVERY,
            catch_up: None,
        }
    }
}

/// A task that keeps a [`SearchIndex`] up to date from the [`Bus`]. Stop it with
/// [`Indexer::stop`] (commits what is pending); dropping it aborts the task.
#[derive(Debug)]
pub struct Indexer {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Subscribes to `bus` and starts applying its events to `index`. When this returns, the
    /// subscription is in place. On a bus with history, it resumes after the position the
    /// index last committed.
    pub async fn start(index: SearchIndex, bus: &Bus) -> Result<Indexer, SearchError> {
        Indexer::start_with(index, bus, IndexerOptions::default()).await
    }

    /// [`Indexer::start`] with explicit settings.
    pub async fn start_with(
        index: SearchIndex,
        bus: &Bus,
        options: IndexerOptions,
    ) -> Result<Indexer, SearchError> {
        let resume = if bus.has_history() {
            index.committed_position()?
        } else {
            None
        };
        let subscription = match resume {
            Some(position) => bus.subscribe_from(position).await?,
            None => bus.subscribe().await?,
        };
        let (stop, stopped) = oneshot::channel();
        let every = options.commit_every.max(Duration::from_millis(1));
        let task = tokio::spawn(run_indexer(
            index,
            subscription,
            every,
            options.catch_up,
            stopped,
        ));
        Ok(Indexer {
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops after committing what was applied.
    pub async fn stop(mut self) -> Result<(), SearchError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| SearchError::Task(e.to_string())),
            None => Ok(()),
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run_indexer(
    index: SearchIndex,
    mut subscription: crate::bus::Subscription,
    every: Duration,
    catch_up: Option<Store>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = false;
    loop {
        tokio::select! {
            delivery = subscription.next() => match delivery {
                Ok(envelope) => {
                    if !envelope.event.is_durable() {
                        continue;
                    }
                    match index.apply_envelope(&envelope) {
                        Ok(_) => pending = true,
                        Err(e) => tracing::error!(error = %e, "search: applying an event failed"),
                    }
                }
                Err(BusError::Closed) => break,
                // Only typing, presence and the like were lost: nothing the index holds.
                Err(BusError::Lagged { durable: false, .. }) => {}
                Err(e @ BusError::Lagged { durable: true, .. }) => match &catch_up {
                    Some(store) => {
                        tracing::warn!(error = %e, "search: the bus lost events; catching up from the store");
                        if let Err(e) = reindex::reindex(store, &index).await {
                            tracing::error!(error = %e, "search: catching up failed; the index may be stale");
                        }
                    }
                    None => {
                        tracing::error!(error = %e, "search: the index missed events and may be stale");
                    }
                },
                Err(e) => tracing::warn!(error = %e, "search: bad bus delivery"),
            },
            _ = tick.tick(), if pending => {
                pending = false;
                commit(&index).await;
            }
            _ = &mut stopped => break,
        }
    }
    commit(&index).await;
}

async fn commit(index: &SearchIndex) {
    let index = index.clone();
    let result = tokio::task::spawn_blocking(move || index.commit()).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "search: commit failed"),
        Err(e) => tracing::error!(error = %e, "search: commit task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_in_both_languages() {
        let mut en = stemming_analyzer(Language::English);
        let mut ru = stemming_analyzer(Language::Russian);
        assert_eq!(tokens(&mut en, "Running Meetings"), ["run", "meet"]);
        assert_eq!(tokens(&mut ru, "библиотеке"), tokens(&mut ru, "Библиотека"));
        assert_eq!(tokens(&mut words_analyzer(), "\"(( AND OR"), ["and", "or"]);
        assert!(tokens(&mut words_analyzer(), "\"(( ) - *").is_empty());
    }
}
