-- How many requests hold each purl. `GET /api/v1/dependencies?purl=…` without `&state=` reads its
-- total here instead of counting the purl's index entries (100,000 of them for a purl in every
-- request). Kept by statement-level triggers in the transaction that writes
-- request_dependencies, whose rows are only ever inserted and deleted (a report replaces them).
CREATE TABLE dependency_request_counts (
    purl TEXT PRIMARY KEY,
    requests BIGINT NOT NULL
);

-- purls in one order: concurrent reports sharing purls lock their counts in the same order
CREATE FUNCTION dependency_request_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dependency_request_counts AS c (purl, requests)
    SELECT purl, count(*) FROM added GROUP BY purl ORDER BY purl COLLATE "C"
    ON CONFLICT (purl) DO UPDATE SET requests = c.requests + EXCLUDED.requests;
    RETURN NULL;
END $$;

CREATE FUNCTION dependency_request_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dependency_request_counts AS c (purl, requests)
    SELECT purl, -count(*) FROM removed GROUP BY purl ORDER BY purl COLLATE "C"
    ON CONFLICT (purl) DO UPDATE SET requests = c.requests + EXCLUDED.requests;
    RETURN NULL;
END $$;

CREATE TRIGGER request_dependencies_count_added AFTER INSERT ON request_dependencies
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION dependency_request_counts_add();
CREATE TRIGGER request_dependencies_count_removed AFTER DELETE ON request_dependencies
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION dependency_request_counts_remove();

INSERT INTO dependency_request_counts (purl, requests)
SELECT purl, count(*) FROM request_dependencies GROUP BY purl;
