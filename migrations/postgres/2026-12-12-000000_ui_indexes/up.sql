-- The request list filtered by repository (`/ui/requests?repo=`, `GET /api/v1/requests?repo=`),
-- newest first: without it PostgreSQL walks the primary key backwards through every newer
-- request of other repositories (a whole-table scan for a repository not seen lately; 100,000
-- requests: see bench/ui.rs). With it, a page is an index range.
CREATE INDEX requests_repo_idx ON requests (repo, id);
