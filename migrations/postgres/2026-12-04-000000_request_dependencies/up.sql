-- The dependency search index: every dependency of every package a request's worker reported,
-- once per request (`purl` is the normalised purl, `common::purl::search_key`; `dev` only when
-- every package that has it has it as a dev dependency). Written in the transaction that stores
-- the packages data, replaced when a worker reports again; kept while the request is stale
-- (its packages data is kept too), gone with the request (ON DELETE CASCADE).
-- Requests reported before this migration are not backfilled.
CREATE TABLE request_dependencies (
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    purl TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    dev BOOLEAN NOT NULL,
    PRIMARY KEY (request_id, purl)
);

-- `?purl=`: the requests holding one purl, newest first, read from the index alone.
CREATE INDEX request_dependencies_purl_idx ON request_dependencies (purl, request_id DESC) INCLUDE (dev);
-- `?type=&name=` (and `&version=`).
CREATE INDEX request_dependencies_name_idx
    ON request_dependencies (type, name, version, request_id DESC) INCLUDE (dev);
