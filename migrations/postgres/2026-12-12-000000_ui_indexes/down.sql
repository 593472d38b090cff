DROP INDEX requests_repo_idx;
