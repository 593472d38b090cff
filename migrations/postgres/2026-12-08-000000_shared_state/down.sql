DROP TABLE service_counters;
DROP TABLE request_log_chunks;
DROP TABLE server_secrets;
