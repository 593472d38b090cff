-- Whether a request's job went to a `larder serve`'s own in-process queue rather than to
-- RabbitMQ. Such a job lives only in that process: a RabbitMQ deployment started on this
-- database once that serve is gone sends these requests' jobs again (api/src/publisher.rs,
-- `requeue_in_process_jobs`), instead of leaving them in progress for ever.
ALTER TABLE requests ADD COLUMN queued_in_process BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX requests_queued_in_process_idx ON requests (id) WHERE queued_in_process AND state = 'in_progress';
