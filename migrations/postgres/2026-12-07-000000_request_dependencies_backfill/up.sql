-- Requests whose packages data was stored before the dependency search existed: the api indexes
-- them in the background (`api/src/search_backfill.rs`), one request a transaction, removing
-- each from here as it goes.
CREATE TABLE request_dependencies_backfill (
    request_id BIGINT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE
);

INSERT INTO request_dependencies_backfill (request_id)
SELECT r.id FROM requests r
WHERE r.packages_data IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM request_dependencies d WHERE d.request_id = r.id);
