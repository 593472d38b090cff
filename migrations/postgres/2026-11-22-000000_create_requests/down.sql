DROP TABLE artifacts;
DROP TABLE configuration_files;
DROP TABLE request_states;
DROP TABLE requests;
