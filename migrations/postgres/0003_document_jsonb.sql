-- The resource document parsed once, when it is written: filters and sorts on attributes
-- without a column of their own read it instead of parsing the text for every row
-- (about 3x faster at 100,000 users). Nothing selects it directly; the Any driver reads
-- the text column `doc`.
ALTER TABLE scim_users ADD COLUMN doc_json jsonb GENERATED ALWAYS AS (doc::jsonb) STORED;
ALTER TABLE scim_groups ADD COLUMN doc_json jsonb GENERATED ALWAYS AS (doc::jsonb) STORED;
