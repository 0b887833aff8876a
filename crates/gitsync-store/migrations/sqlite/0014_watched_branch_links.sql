-- gitsync schema, version 14: a watched branch of a repository link names the link in a column of
-- its own, so that claiming a batch of due branches can join each to its link (and its previews)
-- without taking the repository key apart in SQL. NULL for Proton repositories.
ALTER TABLE watched_branches ADD COLUMN link_id TEXT;
UPDATE watched_branches SET link_id = SUBSTR(repository_key, 6) WHERE repository_key LIKE 'link:%';
