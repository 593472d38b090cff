DROP INDEX requests_queued_in_process_idx;
ALTER TABLE requests DROP COLUMN queued_in_process;
