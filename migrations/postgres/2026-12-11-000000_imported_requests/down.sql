ALTER TABLE transfers DROP COLUMN requests;
DROP INDEX requests_imported;
ALTER TABLE requests DROP CONSTRAINT requests_imported_whole;
ALTER TABLE requests DROP COLUMN imported_id;
ALTER TABLE requests DROP COLUMN imported_instance;
