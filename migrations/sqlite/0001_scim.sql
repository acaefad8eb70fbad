-- SCIM users, groups, memberships and API tokens (SQLite).
-- Timestamps are RFC 3339 UTC text with millisecond precision ("2026-01-02T03:04:05.678Z"),
-- so they sort and compare as text in both back-ends. Resource documents are JSON text.
CREATE TABLE scim_users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    user_name_lower TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE,
    display_name TEXT,
    display_name_lower TEXT,
    active INTEGER NOT NULL,
    doc TEXT NOT NULL,
    version BIGINT NOT NULL,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL
);
CREATE INDEX scim_users_display_name ON scim_users (display_name_lower);

CREATE TABLE scim_emails (
    user_id TEXT NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
    value_lower TEXT NOT NULL,
    PRIMARY KEY (user_id, value_lower)
) WITHOUT ROWID;
CREATE INDEX scim_emails_value ON scim_emails (value_lower);

CREATE TABLE scim_groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    display_name_lower TEXT NOT NULL,
    external_id TEXT UNIQUE,
    doc TEXT NOT NULL,
    version BIGINT NOT NULL,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL
);
CREATE INDEX scim_groups_display_name ON scim_groups (display_name_lower);

-- member_id is a user's or a group's id (member_type says which); rows for a deleted
-- user or group are removed by the store in the same transaction.
CREATE TABLE scim_members (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX scim_members_member ON scim_members (member_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created TEXT NOT NULL
);
