-- Watch-party rooms and their members, Postgres. Keep in step with ../sqlite/0003_watch.sql.
-- (0002 is the file store's.) The live playback state is not here: it changes many times a
-- minute and lives in memory or Redis (messaging/src/watch_live.rs). Times are Unix ms.

CREATE TABLE watch_rooms (
    id          TEXT   PRIMARY KEY,
    host_id     BIGINT NOT NULL REFERENCES users (id),
    title       TEXT   NOT NULL,
    source_url  TEXT,               -- an http(s) URL, or
    source_file TEXT,               -- a file id (readable by the room's members)
    duration_ms BIGINT,             -- length of the media, when known
    created_at  BIGINT NOT NULL,
    CHECK ((source_url IS NULL) <> (source_file IS NULL))
);
CREATE INDEX watch_rooms_source_file ON watch_rooms (source_file);

CREATE TABLE watch_members (
    room_id   TEXT   NOT NULL REFERENCES watch_rooms (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT   NOT NULL CHECK (role IN ('host', 'controller', 'viewer')),
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX watch_members_user ON watch_members (user_id);
