-- What every api instance must agree on, kept here rather than on one machine's disk.

-- The secret repository tokens are derived from (`api/src/secret.rs`): created once, by the
-- first api to start (or imported from its `secret.key`), never replaced.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A request's log, as its workers sent it: chunks of whole lines, read back in `id` order.
-- `(writer, writer_seq)` names a chunk as its worker process numbered it, so a chunk sent
-- again after a lost answer is stored once.
CREATE TABLE request_log_chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    writer TEXT NOT NULL,
    writer_seq BIGINT NOT NULL,
    body BYTEA NOT NULL,
    UNIQUE (request_id, writer, writer_seq)
);

CREATE INDEX request_log_chunks_request_idx ON request_log_chunks (request_id, id);

-- Counters of the whole deployment (`api/src/counters.rs`): each api instance adds what it
-- counted every few seconds, so `/metrics` reports the same totals from any instance.
CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
