//! # messaging: accounts, tokens, chat, presence, watch-party rooms and search
//!
//! Today this crate owns the one token model every GAX door checks ([`auth`]): a JWT whose
//! grants say which room a holder may enter and whether it may publish or subscribe. Accounts,
//! chats with history, presence, watch-party rooms and search (issue 4 and 5) grow here next,
//! all issuing and checking the same tokens.

pub mod auth;
