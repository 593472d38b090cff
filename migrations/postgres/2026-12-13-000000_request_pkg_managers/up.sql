-- The request list filtered by package manager (`?pkg_manager=` on `/ui/requests` and
-- `GET /api/v1/requests`), newest first. On `requests.pkg_managers` alone PostgreSQL estimates
-- any package manager it has no statistics for at 0.5 % of requests and walks the primary key
-- backwards expecting a match soon: for a package manager no recent request used, that read
-- every request (100,000 requests: 57 ms; see bench/ui.rs). A GIN index on the array does not
-- change that plan. One row per (package manager, request), kept by a trigger so every way a
-- request is made (a submission, an import) fills it, makes a page an index range of this
-- package manager's requests.
CREATE TABLE request_pkg_managers (
    pkg_manager TEXT NOT NULL,
    request_id BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    PRIMARY KEY (pkg_manager, request_id)
);

INSERT INTO request_pkg_managers (pkg_manager, request_id)
SELECT DISTINCT unnest(pkg_managers), id FROM requests;

CREATE FUNCTION request_pkg_managers_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO request_pkg_managers (pkg_manager, request_id)
    SELECT DISTINCT unnest(NEW.pkg_managers), NEW.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER request_pkg_managers_added AFTER INSERT ON requests
    FOR EACH ROW EXECUTE FUNCTION request_pkg_managers_add();

-- a request's package managers are fixed when it is made
CREATE FUNCTION request_pkg_managers_fixed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the package managers of request % cannot change', OLD.id;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER request_pkg_managers_fixed BEFORE UPDATE OF pkg_managers ON requests
    FOR EACH ROW WHEN (OLD.pkg_managers IS DISTINCT FROM NEW.pkg_managers)
    EXECUTE FUNCTION request_pkg_managers_fixed();
