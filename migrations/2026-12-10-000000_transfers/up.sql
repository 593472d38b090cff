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
