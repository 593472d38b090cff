-- A large configuration file (a rewritten lockfile) is kept in the store under its sha256 and
-- streamed from there; only small ones stay in the row.
ALTER TABLE configuration_files ALTER COLUMN content DROP NOT NULL;
ALTER TABLE configuration_files ADD COLUMN sha256 TEXT;
ALTER TABLE configuration_files ADD CONSTRAINT configuration_files_one_content
    CHECK ((content IS NULL) <> (sha256 IS NULL));
