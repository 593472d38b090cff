-- Exports and imports of the store (`larder export`, `larder import`): what moved, from which
-- instance, covering which time range, and how it went.
CREATE TABLE transfers (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('export', 'import')),
    -- the exporting instance (an import: the instance its manifest names)
    instance TEXT NOT NULL,
    since TIMESTAMP,
    until TIMESTAMP NOT NULL,
    directory TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'complete', 'failed')),
    state_reason TEXT NOT NULL DEFAULT '',
    started TIMESTAMP NOT NULL,
    finished TIMESTAMP,
    objects BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    present BIGINT NOT NULL DEFAULT 0,
    refused BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX transfers_last_export ON transfers (instance, until) WHERE kind = 'export' AND state = 'complete';

-- What each export held, by key: an export `--since-last` starts a little before the last one
-- ended (an upload in flight then is not missed) and leaves out what that one carried.
CREATE TABLE exported_objects (
    transfer_id BIGINT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    PRIMARY KEY (transfer_id, key)
);
