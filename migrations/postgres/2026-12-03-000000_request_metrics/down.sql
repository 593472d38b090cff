DROP INDEX requests_error_type_idx;
DROP INDEX requests_error_origin_idx;
DROP INDEX requests_created_idx;
DROP INDEX request_states_finished_idx;
