-- Files: the metadata of blobs kept by media-store, who may read them, and resumable uploads.
-- Same text on SQLite and Postgres. Times are Unix milliseconds.

CREATE TABLE files (
    id           TEXT   PRIMARY KEY,  -- media-store BlobId, server-generated
    owner_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,     -- the client's file name, validated, never a path
    size         BIGINT NOT NULL,
    content_type TEXT   NOT NULL,     -- sniffed from the bytes
    sha256       TEXT   NOT NULL,     -- lowercase hex; also the ETag
    created_at   BIGINT NOT NULL
);
CREATE INDEX files_owner ON files (owner_id);

-- A file attached to a message in a chat: the chat's members may read it.
CREATE TABLE file_shares (
    file_id TEXT   NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    chat_id BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    PRIMARY KEY (file_id, chat_id)
);
CREATE INDEX file_shares_chat ON file_shares (chat_id);

-- A resumable upload in progress (parts live in the blob store until complete or abort).
CREATE TABLE uploads (
    id         TEXT   PRIMARY KEY,    -- server-generated, what the client sees
    file_id    TEXT   NOT NULL,       -- the blob it becomes
    backend_id TEXT   NOT NULL,       -- the blob store's upload id (S3 UploadId)
    owner_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX uploads_owner ON uploads (owner_id);
