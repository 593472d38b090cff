DROP TABLE request_dependencies;
