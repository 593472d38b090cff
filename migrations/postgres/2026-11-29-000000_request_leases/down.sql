DROP INDEX requests_leases_idx;
ALTER TABLE requests DROP COLUMN worker;
ALTER TABLE requests DROP COLUMN heartbeat_at;
ALTER TABLE requests DROP COLUMN started_at;
ALTER TABLE requests DROP COLUMN attempts;
