-- The request metrics read final states by the time they were reached, newest first, for a
-- page or a window; the predicate is the one their queries write (a partial index is used only
-- for a query that implies it).
CREATE INDEX request_states_finished_idx ON request_states (updated, id)
    WHERE state IN ('complete', 'failed');
-- The request list filters on the creation time and on the error; with the id, an error
-- filter also reads the newest first without sorting. Few requests fail: the error indexes
-- hold only those that did.
CREATE INDEX requests_created_idx ON requests (created);
CREATE INDEX requests_error_origin_idx ON requests (error_origin, id) WHERE error_origin IS NOT NULL;
CREATE INDEX requests_error_type_idx ON requests (error_type, id) WHERE error_type IS NOT NULL;
