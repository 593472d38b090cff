DROP TABLE exported_objects;
DROP TABLE transfers;
