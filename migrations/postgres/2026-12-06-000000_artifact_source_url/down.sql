ALTER TABLE artifacts DROP COLUMN source_url;
