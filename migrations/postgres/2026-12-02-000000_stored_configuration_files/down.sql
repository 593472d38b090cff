DELETE FROM configuration_files WHERE content IS NULL;
ALTER TABLE configuration_files DROP CONSTRAINT configuration_files_one_content;
ALTER TABLE configuration_files DROP COLUMN sha256;
ALTER TABLE configuration_files ALTER COLUMN content SET NOT NULL;
