-- The operators' console (issue 8), SQLite dialect. Kept column-for-column equal to
-- migrations/postgres/0501_console.sql.

-- Console accounts. password_hash is an argon2id PHC string (salt and parameters inside);
-- role: 'viewer' (dashboards), 'operator' (+ reversals, reconciliation, audited person lookups,
-- lost cards), 'admin' (+ accounts, partner applications).
CREATE TABLE console_users (
    username        TEXT    PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 64),
    role            TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash   TEXT    NOT NULL,
    -- Failed logins since the last success; at 5 the account is locked until locked_until_ms.
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL
);

-- Login sessions. The cookie carries a random token; only its SHA-256 is stored, so a copy of
-- the database opens no session. csrf is the form token of the session.
CREATE TABLE console_sessions (
    token_sha256  BLOB    PRIMARY KEY CHECK (length(token_sha256) = 32),
    username      TEXT    NOT NULL REFERENCES console_users (username),
    csrf          TEXT    NOT NULL CHECK (length(csrf) = 32),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX console_sessions_by_user ON console_sessions (username);

-- What operators did: logins (ok and refused), accounts created, lookups, lost cards.
CREATE TABLE console_audit (
    audit_id  TEXT    PRIMARY KEY CHECK (length(audit_id) = 32),
    username  TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL
);
CREATE INDEX console_audit_by_time ON console_audit (at_ms);
