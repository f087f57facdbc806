//! The one error type of the messaging store, [`StoreError`].
//!
//! Every variant has a stable machine code ([`StoreError::code`]) that clients may switch on
//! and a kind ([`StoreError::kind`], an [`ErrorKind`]: invalid input, not found, conflict, ...)
//! from which the HTTP/WebSocket layer picks its status or close code in one place; no HTTP
//! here. Internal failures (database, hashing) all share the code `internal` and their
//! details are meant for the log, not for the client.

use std::time::Duration;

/// Why a store operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- input ---
    /// The username is not 3 to 32 characters of `a-z 0-9 _ . -` (case-insensitive).
    #[error("a username is 3 to 32 characters of a-z, 0-9, '_', '.' and '-'")]
    InvalidUsername,
    /// The password is shorter than 8 or longer than 1024 characters.
    #[error("a password is 8 to 1024 characters")]
    InvalidPassword,
    /// A field failed validation (length, characters, range).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        field: &'static str,
        reason: &'static str,
    },
    /// The message has no text (after trimming) and no attachment.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message text is longer than the limit.
    #[error("the message is longer than {max} characters")]
    MessageTooLong { max: usize },

    // --- accounts and sessions ---
    #[error("the username is taken")]
    UsernameTaken,
    /// Unknown user or wrong password: deliberately one error for both.
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many attempts, retry in {} s", ceil_secs(*retry_after))]
    RateLimited { retry_after: Duration },
    /// The refresh token is unknown (or malformed).
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
    /// The session was logged out or revoked after a reuse.
    #[error("the refresh token was revoked")]
    RefreshTokenRevoked,
    /// An already rotated token was presented again: the whole session family is now revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("no such user")]
    UserNotFound,

    // --- friends ---
    #[error("you cannot befriend yourself")]
    CannotFriendSelf,
    #[error("you are already friends")]
    AlreadyFriends,
    #[error("a friend request is already pending")]
    FriendRequestExists,
    #[error("no such friend request")]
    FriendRequestNotFound,
    #[error("you are not friends")]
    NotFriends,

    // --- chats ---
    #[error("you cannot open a direct chat with yourself")]
    CannotChatSelf,
    /// The caller is not (or no longer) a member of the chat, or the chat does not exist.
    #[error("you are not a member of this chat")]
    NotMember,
    #[error("no such chat")]
    ChatNotFound,
    #[error("only a group admin can do this")]
    NotAdmin,
    #[error("this needs a group chat")]
    NotGroup,
    #[error("the user is already a member")]
    AlreadyMember,
    /// The user an admin acted on is not a member of the chat.
    #[error("the user is not a member of this chat")]
    UserNotInChat,
    #[error("the group is full ({max} members)")]
    GroupFull { max: usize },
    #[error("the creator of a group cannot be removed")]
    CannotRemoveCreator,

    // --- messages ---
    #[error("no such message")]
    MessageNotFound,
    #[error("only the author can change a message")]
    NotAuthor,
    #[error("the message was deleted")]
    MessageDeleted,

    // --- files ---
    #[error("no such file")]
    FileNotFound,
    /// The file exists but the caller may not read it (not the owner, not shared with them).
    #[error("you may not read this file")]
    FileForbidden,
    #[error("only the owner can do this to a file")]
    NotFileOwner,
    #[error("no such upload")]
    UploadNotFound,

    // --- internal ---
    #[error("bad store configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// A stable, machine-readable code (snake_case). Clients switch on this, never on the text.
    pub fn code(&self) -> &'static str {
        use StoreError::*;
        match self {
            InvalidUsername => "invalid_username",
            InvalidPassword => "invalid_password",
            InvalidInput { .. } => "invalid_input",
            EmptyMessage => "message_empty",
            MessageTooLong { .. } => "message_too_long",
            UsernameTaken => "username_taken",
            BadCredentials => "bad_credentials",
            RateLimited { .. } => "rate_limited",
            InvalidRefreshToken => "refresh_invalid",
            RefreshTokenExpired => "refresh_expired",
            RefreshTokenRevoked => "refresh_revoked",
            RefreshTokenReused => "refresh_reused",
            UserNotFound => "user_not_found",
            CannotFriendSelf => "cannot_friend_self",
            AlreadyFriends => "already_friends",
            FriendRequestExists => "friend_request_exists",
            FriendRequestNotFound => "friend_request_not_found",
            NotFriends => "not_friends",
            CannotChatSelf => "cannot_chat_self",
            NotMember => "not_member",
            ChatNotFound => "chat_not_found",
            NotAdmin => "not_admin",
            NotGroup => "not_group",
            AlreadyMember => "already_member",
            UserNotInChat => "user_not_in_chat",
            GroupFull { .. } => "group_full",
            CannotRemoveCreator => "cannot_remove_creator",
            MessageNotFound => "message_not_found",
            NotAuthor => "not_author",
            MessageDeleted => "message_deleted",
            FileNotFound => "file_not_found",
            FileForbidden => "file_forbidden",
            NotFileOwner => "not_file_owner",
            UploadNotFound => "upload_not_found",
            Config(_) | Database(_) | Migrate(_) | Internal(_) => "internal",
        }
    }

    /// What kind of refusal or failure this is.
    pub fn kind(&self) -> ErrorKind {
        use StoreError::*;
        match self {
            InvalidUsername
            | InvalidPassword
            | InvalidInput { .. }
            | EmptyMessage
            | CannotFriendSelf
            | CannotChatSelf
            | NotGroup => ErrorKind::Invalid,
            BadCredentials | InvalidRefreshToken | RefreshTokenExpired | RefreshTokenRevoked
            | RefreshTokenReused => ErrorKind::Unauthenticated,
            NotMember | NotAdmin | NotAuthor | CannotRemoveCreator | FileForbidden
            | NotFileOwner => ErrorKind::Forbidden,
            UserNotFound
            | FriendRequestNotFound
            | NotFriends
            | UserNotInChat
            | MessageNotFound
            | ChatNotFound
            | FileNotFound
            | UploadNotFound => ErrorKind::NotFound,
            UsernameTaken
            | AlreadyFriends
            | FriendRequestExists
            | AlreadyMember
            | GroupFull { .. } => ErrorKind::Conflict,
            MessageDeleted => ErrorKind::Gone,
            MessageTooLong { .. } => ErrorKind::TooLarge,
            RateLimited { .. } => ErrorKind::RateLimited,
            Config(_) | Database(_) | Migrate(_) | Internal(_) => ErrorKind::Internal,
        }
    }

    /// True for failures of the server rather than of the request (log these).
    pub fn is_internal(&self) -> bool {
        self.kind() == ErrorKind::Internal
    }
}

/// The kinds of refusal and failure the messaging errors fall into: what a door needs to pick
/// its answer (an HTTP status, a close code) without knowing every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule of the input.
    Invalid,
    /// Credentials or a refresh token are wrong, expired or revoked.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// What the request names does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with the current state (taken, already, full, stale).
    Conflict,
    /// It existed and was deleted.
    Gone,
    /// The input is larger than allowed.
    TooLarge,
    /// Too many attempts; retry later.
    RateLimited,
    /// A failure of the server, not of the request.
    Internal,
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
pub fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Is this database error a unique-constraint violation (same test on SQLite and Postgres)?
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_kinds_sane() {
        let all = [
            StoreError::InvalidUsername,
            StoreError::BadCredentials,
            StoreError::RateLimited {
                retry_after: Duration::from_millis(1500),
            },
            StoreError::NotMember,
            StoreError::MessageTooLong { max: 4000 },
            StoreError::Internal("x".into()),
        ];
        for e in &all {
            assert!(e.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(StoreError::NotMember.kind(), ErrorKind::Forbidden);
        assert!(StoreError::Internal("x".into()).is_internal());
        assert!(all[2].to_string().contains("retry in 2 s"));
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
    }
}
