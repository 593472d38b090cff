-- The upstream URL each artifact was fetched from (credentials stripped): the SBOM's
-- `distribution` reference and SPDX `downloadLocation`. Artifacts recorded before it have none.
ALTER TABLE artifacts ADD COLUMN source_url TEXT;
