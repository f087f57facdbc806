//! The messenger's write path: every change goes to the store first (durably), and only then
//! is announced, so nothing is delivered that could be lost. REST handlers and the `/ws`
//! messenger session both write through here.

use messaging::{ChatId, NewMessage, Sent, StoreError, UserId};

use crate::App;

impl App {
    /// Stores a message; a retry with the same client key returns the original.
    pub async fn send(
        &self,
        me: UserId,
        chat: ChatId,
        message: NewMessage,
    ) -> Result<Sent, StoreError> {
        self.store.send_message(me, chat, message).await
    }

    /// Moves the caller's read mark forward; returns where it stands.
    pub async fn mark_read(&self, me: UserId, chat: ChatId, seq: i64) -> Result<i64, StoreError> {
        self.store.mark_read(me, chat, seq).await
    }

    /// A chat was created, renamed or its members changed.
    pub async fn chat_changed(&self, _chat: ChatId) {}

    /// A message was edited or deleted.
    pub async fn message_changed(&self, _message: &messaging::Message, _deleted: bool) {}
}
