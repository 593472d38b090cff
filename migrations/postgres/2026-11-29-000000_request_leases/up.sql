-- Who is processing a request, and since when: a worker claims a request for one attempt and
-- keeps its lease alive with heartbeats; a stale lease lets another worker take the request
-- over, and too many attempts or too long a run fail it.
ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- the first claim: the request's deadline counts from here (time in the queue is not its fault)
ALTER TABLE requests ADD COLUMN started_at TIMESTAMP;
ALTER TABLE requests ADD COLUMN heartbeat_at TIMESTAMP;
ALTER TABLE requests ADD COLUMN worker TEXT;

CREATE INDEX requests_leases_idx ON requests (heartbeat_at) WHERE state = 'in_progress';
