-- GAX messenger schema, SQLite. Keep in step with ../postgres/0001_messaging.sql: same tables,
-- columns and constraints; only the id columns differ. Times are Unix milliseconds.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT    NOT NULL,
    username_key   TEXT    NOT NULL UNIQUE, -- lowercase username
    password_hash  TEXT    NOT NULL,        -- argon2id, PHC string
    display_name   TEXT    NOT NULL,
    avatar_file_id TEXT,
    bio            TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL
);

CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      TEXT   NOT NULL,        -- one per login; revoked together
    token_hash  TEXT   NOT NULL UNIQUE, -- SHA-256 hex of the token
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,                 -- set when rotated
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE friend_requests (
    from_user  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (from_user, to_user),
    CHECK (from_user <> to_user)
);
CREATE INDEX friend_requests_to ON friend_requests (to_user);

CREATE TABLE friendships (
    user_lo BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_hi BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    since   BIGINT NOT NULL,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);
CREATE INDEX friendships_hi ON friendships (user_hi);

CREATE TABLE chats (
    id               INTEGER PRIMARY KEY,
    kind             TEXT   NOT NULL CHECK (kind IN ('direct', 'group')),
    title            TEXT,
    direct_key       TEXT   UNIQUE,      -- '<lo id>:<hi id>' for direct chats, else NULL
    created_by       BIGINT NOT NULL REFERENCES users (id),
    created_at       BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL
);

CREATE TABLE chat_members (
    chat_id       BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT   NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at     BIGINT NOT NULL,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sender_id   BIGINT NOT NULL REFERENCES users (id),
    body        TEXT,                      -- NULL: tombstone or attachments only
    attachments TEXT   NOT NULL DEFAULT '[]', -- JSON array of file ids
    client_key  TEXT,
    created_at  BIGINT NOT NULL,
    edited_at   BIGINT,
    deleted_at  BIGINT,
    UNIQUE (chat_id, seq),
    UNIQUE (chat_id, sender_id, client_key)
);
