-- The audit log (append-only; also the change feed other rolecall servers follow),
-- the mapping document, and the role-token signing keys (SQLite).
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    request_id TEXT,
    client TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_id);

-- One row: the mapping document in force (JSON) and its version.
CREATE TABLE mapping_document (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    updated TEXT NOT NULL
);

-- Ed25519 keys for signed role tokens; private keys never leave the database.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    private_pkcs8 TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created TEXT NOT NULL,
    retired TEXT
);
