DROP INDEX requests_bundle_sha256;
ALTER TABLE requests DROP COLUMN bundle_sha256;
