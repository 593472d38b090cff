-- Requests another instance exported (`larder export --with-requests`) and this one imported:
-- their record (what was asked, how it ended, its history and contents), under an id of this
-- instance; the pair below names the original, once.
ALTER TABLE requests ADD COLUMN imported_instance TEXT;
ALTER TABLE requests ADD COLUMN imported_id BIGINT;
ALTER TABLE requests ADD CONSTRAINT requests_imported_whole
    CHECK ((imported_instance IS NULL) = (imported_id IS NULL));
CREATE UNIQUE INDEX requests_imported ON requests (imported_instance, imported_id)
    WHERE imported_instance IS NOT NULL;

ALTER TABLE transfers ADD COLUMN requests BIGINT NOT NULL DEFAULT 0;
