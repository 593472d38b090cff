-- A request: what was asked, where it is now, and what its worker reported.
CREATE TABLE requests (
    id BIGSERIAL PRIMARY KEY,
    repo TEXT NOT NULL,
    ref TEXT NOT NULL,
    pkg_managers TEXT[] NOT NULL,
    packages JSONB NOT NULL DEFAULT '{}',
    flags TEXT[] NOT NULL,
    dependency_replacements JSONB NOT NULL DEFAULT '[]',
    user_name TEXT,
    submitted_by TEXT,
    created TIMESTAMP NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    updated TIMESTAMP NOT NULL,
    error_origin TEXT,
    error_type TEXT,
    packages_count INTEGER,
    dependencies_count INTEGER,
    packages_data JSONB,
    environment_variables JSONB NOT NULL DEFAULT '{}',
    token_salt TEXT NOT NULL,
    -- set once the job message is confirmed by the broker; NULL means it still has to be sent
    dispatched_at TIMESTAMP
);

CREATE INDEX requests_state_idx ON requests (state, id);
CREATE INDEX requests_ref_idx ON requests (ref);
CREATE INDEX requests_undispatched_idx ON requests (id) WHERE dispatched_at IS NULL AND state = 'in_progress';

CREATE TABLE request_states (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    updated TIMESTAMP NOT NULL
);

CREATE INDEX request_states_request_idx ON request_states (request_id, id);

CREATE TABLE configuration_files (
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (request_id, path)
);

-- The files a request's repositories serve.
CREATE TABLE artifacts (
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    pm TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    store_key TEXT NOT NULL,
    meta JSONB NOT NULL DEFAULT 'null',
    PRIMARY KEY (request_id, pm, name, filename)
);
