-- The embedded database (LARDER_DATABASE_URL unset): the schema PostgreSQL reaches through
-- migrations/postgres/ (to 2026-12-14), written for SQLite once. Ids are AUTOINCREMENT as a
-- sequence's are (never reused: log chunks and lists are read after an id); timestamps are
-- text as diesel writes them (ordered as text); jsonb is SQLite's binary JSONB; a text[] is a
-- JSON array in text. Later changes go in both directories.

CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    pkg_managers TEXT NOT NULL,
    packages BLOB NOT NULL DEFAULT (jsonb('{}')),
    flags TEXT NOT NULL,
    dependency_replacements BLOB NOT NULL DEFAULT (jsonb('[]')),
    user_name TEXT,
    submitted_by TEXT,
    created TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    updated TEXT NOT NULL,
    error_origin TEXT,
    error_type TEXT,
    packages_count INTEGER,
    dependencies_count INTEGER,
    packages_data BLOB,
    environment_variables BLOB NOT NULL DEFAULT (jsonb('{}')),
    token_salt TEXT NOT NULL,
    dispatched_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    heartbeat_at TEXT,
    worker TEXT,
    dispatch_lease_until TEXT,
    bundle_sha256 TEXT,
    imported_instance TEXT,
    imported_id INTEGER,
    queued_in_process INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT requests_imported_whole CHECK ((imported_instance IS NULL) = (imported_id IS NULL))
);
CREATE INDEX requests_bundle_sha256 ON requests (bundle_sha256) WHERE bundle_sha256 IS NOT NULL;
CREATE INDEX requests_created_idx ON requests (created);
CREATE INDEX requests_error_origin_idx ON requests (error_origin, id) WHERE error_origin IS NOT NULL;
CREATE INDEX requests_error_type_idx ON requests (error_type, id) WHERE error_type IS NOT NULL;
CREATE UNIQUE INDEX requests_imported ON requests (imported_instance, imported_id) WHERE imported_instance IS NOT NULL;
CREATE INDEX requests_leases_idx ON requests (heartbeat_at) WHERE state = 'in_progress';
CREATE INDEX requests_queued_in_process_idx ON requests (id) WHERE queued_in_process AND state = 'in_progress';
CREATE INDEX requests_ref_idx ON requests (ref);
CREATE INDEX requests_repo_idx ON requests (repo, id);
CREATE INDEX requests_state_idx ON requests (state, id);
CREATE INDEX requests_undispatched_idx ON requests (id) WHERE dispatched_at IS NULL AND state = 'in_progress';

CREATE TABLE request_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX request_states_finished_idx ON request_states (updated, id) WHERE state IN ('complete', 'failed');
CREATE INDEX request_states_request_idx ON request_states (request_id, id);

CREATE TABLE configuration_files (
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content BLOB,
    sha256 TEXT,
    PRIMARY KEY (request_id, path),
    CONSTRAINT configuration_files_one_content CHECK ((content IS NULL) <> (sha256 IS NULL))
);

CREATE TABLE artifacts (
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    pm TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    store_key TEXT NOT NULL,
    meta BLOB NOT NULL DEFAULT (jsonb('null')),
    source_url TEXT,
    PRIMARY KEY (request_id, pm, name, filename)
);

CREATE TABLE request_dependencies (
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    purl TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    dev INTEGER NOT NULL,
    PRIMARY KEY (request_id, purl)
);
CREATE INDEX request_dependencies_name_idx ON request_dependencies (type, name, version, request_id DESC, dev);
CREATE INDEX request_dependencies_purl_idx ON request_dependencies (purl, request_id DESC, dev);

CREATE TABLE dependency_request_counts (
    purl TEXT PRIMARY KEY,
    requests INTEGER NOT NULL
);
CREATE TRIGGER request_dependencies_count_added AFTER INSERT ON request_dependencies
BEGIN
    INSERT INTO dependency_request_counts (purl, requests) VALUES (NEW.purl, 1)
    ON CONFLICT (purl) DO UPDATE SET requests = requests + 1;
END;
CREATE TRIGGER request_dependencies_count_removed AFTER DELETE ON request_dependencies
BEGIN
    UPDATE dependency_request_counts SET requests = requests - 1 WHERE purl = OLD.purl;
END;

CREATE TABLE request_dependencies_backfill (
    request_id INTEGER PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE
);

CREATE TABLE request_log_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    writer TEXT NOT NULL,
    writer_seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (request_id, writer, writer_seq)
);
CREATE INDEX request_log_chunks_request_idx ON request_log_chunks (request_id, id);

CREATE TABLE request_pkg_managers (
    pkg_manager TEXT NOT NULL,
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    PRIMARY KEY (pkg_manager, request_id)
);
CREATE TRIGGER request_pkg_managers_added AFTER INSERT ON requests
BEGIN
    INSERT OR IGNORE INTO request_pkg_managers (pkg_manager, request_id)
    SELECT value, NEW.id FROM json_each(NEW.pkg_managers);
END;
CREATE TRIGGER request_pkg_managers_fixed BEFORE UPDATE OF pkg_managers ON requests
WHEN OLD.pkg_managers IS NOT NEW.pkg_managers
BEGIN
    SELECT RAISE(ABORT, 'the package managers of a request cannot change');
END;

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('export', 'import')),
    instance TEXT NOT NULL,
    since TEXT,
    until TEXT NOT NULL,
    directory TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'complete', 'failed')),
    state_reason TEXT NOT NULL DEFAULT '',
    started TEXT NOT NULL,
    finished TEXT,
    objects INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    present INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX transfers_last_export ON transfers (instance, until) WHERE kind = 'export' AND state = 'complete';

CREATE TABLE exported_objects (
    transfer_id INTEGER NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    PRIMARY KEY (transfer_id, key)
);
