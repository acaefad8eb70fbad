-- Same-named as the PostgreSQL migration, which adds a parsed copy of the resource
-- document (jsonb). SQLite's JSON functions read the text column directly, so there is
-- nothing to change here.
SELECT 1;
