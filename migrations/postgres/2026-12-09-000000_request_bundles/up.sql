-- The request's bundle by the sha256 (hex) of its bytes: on an object store the api finds the
-- blob by it, and a blob goes only when no request that is not stale names it.
ALTER TABLE requests ADD COLUMN bundle_sha256 TEXT;
CREATE INDEX requests_bundle_sha256 ON requests (bundle_sha256) WHERE bundle_sha256 IS NOT NULL;
