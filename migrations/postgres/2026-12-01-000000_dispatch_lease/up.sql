-- A dispatcher that is publishing a request's job holds it until then (no database connection
-- is held while it waits for the broker); a dispatcher that died mid-way lets it go when the
-- lease ends, so the job is still sent at least once.
ALTER TABLE requests ADD COLUMN dispatch_lease_until TIMESTAMP;
