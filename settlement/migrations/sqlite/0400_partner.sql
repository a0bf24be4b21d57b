-- The partner platform (issue 8): the registry of partners, their applications, credentials and
-- scopes; replay protection; the audit of every partner call; consent tokens; the card status
-- register; the webhook outbox. SQLite dialect, kept column-for-column equal to
-- migrations/postgres/0400_partner.sql: one set of queries serves both databases.
--
-- No ID number (身份证号), name or card number is stored here in clear: cards are referred to by
-- the persons table's SHA-256 lookup key (medical/person.rs `lookup_key("card", ..)`) and
-- persons in the audit by a domain-separated SHA-256 of the psn_no. Times are Unix ms UTC.

-- Partners: a department, a bank or a third party. The rate limit is per partner (all its
-- applications together).
CREATE TABLE partners (
    -- Stable code chosen at registration (1-32 ASCII [A-Za-z0-9_-]).
    partner_code    TEXT    PRIMARY KEY CHECK (length(partner_code) BETWEEN 1 AND 32),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            TEXT    NOT NULL CHECK (kind IN ('department', 'bank', 'third_party')),
    -- Sustained calls per minute and burst (GCRA, governor): set by the operator at approval.
    rate_per_minute INTEGER NOT NULL CHECK (rate_per_minute BETWEEN 1 AND 1000000),
    burst           INTEGER NOT NULL CHECK (burst BETWEEN 1 AND 100000),
    created_at_ms   INTEGER NOT NULL
);

-- Applications. state: 'pending' until an operator approves or rejects; 'suspended' stops an
-- approved one. Only 'approved' applications may call.
CREATE TABLE partner_apps (
    app_id          TEXT    PRIMARY KEY CHECK (length(app_id) BETWEEN 1 AND 40),
    partner_code    TEXT    NOT NULL REFERENCES partners (partner_code),
    name            TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'suspended')),
    -- Where webhooks go (http or https URL), NULL for none.
    webhook_url     TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX partner_apps_by_state ON partner_apps (state, created_at_ms);

-- Who did what to an application (registration, approval, rejection, suspension), append-only.
CREATE TABLE partner_app_events (
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    at_ms           INTEGER NOT NULL,
    -- 'partner' for a registration, else the operator account.
    by_account      TEXT    NOT NULL CHECK (length(by_account) BETWEEN 1 AND 64),
    action          TEXT    NOT NULL CHECK (action IN ('registered', 'approved', 'rejected', 'suspended',
                                                   'key_revoked')),
    -- JSON: granted scopes, rate limit, the key revoked.
    detail          TEXT    NOT NULL
);
CREATE INDEX partner_app_events_by_app ON partner_app_events (app_id, at_ms);

-- Credentials: public keys registered by the partner (the platform never holds a partner's
-- private key). algorithm: 'SM2' (SM3, GM/T 0009 distinguishing ID sm2_id) or 'ECDSA_P256'
-- (SHA-256). public_key: uncompressed point 04||X||Y, 65 bytes.
CREATE TABLE partner_keys (
    key_id          TEXT    PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 40),
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    algorithm       TEXT    NOT NULL CHECK (algorithm IN ('SM2', 'ECDSA_P256')),
    public_key      BLOB    NOT NULL CHECK (length(public_key) = 65),
    sm2_id          TEXT    NOT NULL CHECK (length(sm2_id) <= 64),
    state           TEXT    NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX partner_keys_by_app ON partner_keys (app_id);

-- Scopes: an operation on one directory use (directory_uses.number). requested at registration;
-- granted = 1 once an operator granted it (an approval may grant a subset).
CREATE TABLE partner_scopes (
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    use_number      TEXT    NOT NULL CHECK (length(use_number) BETWEEN 1 AND 16),
    operation       TEXT    NOT NULL CHECK (length(operation) BETWEEN 1 AND 32),
    granted         INTEGER NOT NULL CHECK (granted IN (0, 1)),
    PRIMARY KEY (app_id, use_number, operation)
);

-- Nonces seen per key, kept until the timestamp window has passed: a second use is a replay.
CREATE TABLE partner_nonces (
    key_id          TEXT    NOT NULL,
    nonce           TEXT    NOT NULL CHECK (length(nonce) BETWEEN 16 AND 64),
    expires_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX partner_nonces_by_expiry ON partner_nonces (expires_at_ms);

-- One row per partner API call, accepted or refused, append-only. subject_sha256: the person
-- concerned, as SHA-256("ssc-partner-subject-v1\0" || psn_no), never an ID number or name.
CREATE TABLE partner_audit (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           INTEGER NOT NULL,
    -- Who called: the key id of a signed request (as sent, when it has a key id's shape; '-'
    -- otherwise), 'issuer:<paas id>' for a consent issuer, 'operator:<account>' for an operator,
    -- 'public' for a registration.
    caller          TEXT    NOT NULL CHECK (length(caller) BETWEEN 1 AND 80),
    -- The application and its partner, when known.
    app_id          TEXT,
    partner_code    TEXT,
    -- The operation (e.g. 'card.verify'), the use and the scope it ran under.
    operation       TEXT    NOT NULL,
    use_number      TEXT,
    scope           TEXT,
    subject_sha256  BLOB    CHECK (subject_sha256 IS NULL OR length(subject_sha256) = 32),
    -- 'ok' or the error code returned; the HTTP status.
    result          TEXT    NOT NULL,
    http_status     INTEGER NOT NULL
);
CREATE INDEX partner_audit_by_app ON partner_audit (app_id, seq);
CREATE INDEX partner_audit_by_subject ON partner_audit (subject_sha256, seq);

-- One-time consent tokens issued after the holder proved possession (PIN at the agent/kiosk, or
-- the e-card). Only the token's SHA-256 is stored. Bound to an application and a scope.
CREATE TABLE partner_consents (
    token_sha256    BLOB    PRIMARY KEY CHECK (length(token_sha256) = 32),
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    use_number      TEXT    NOT NULL,
    operation       TEXT    NOT NULL,
    psn_no          TEXT    NOT NULL,
    card_no_sha256  BLOB    NOT NULL CHECK (length(card_no_sha256) = 32),
    -- 'agent' (card + PIN at a terminal agent), 'kiosk', 'e-card'.
    channel         TEXT    NOT NULL CHECK (channel IN ('agent', 'kiosk', 'e-card')),
    issued_by       TEXT    NOT NULL,
    issued_at_ms    INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL
);
-- A consent's single use: the insert that consumes it (the primary key refuses a second).
CREATE TABLE partner_consent_uses (
    token_sha256    BLOB    PRIMARY KEY REFERENCES partner_consents (token_sha256),
    used_at_ms      INTEGER NOT NULL
);

-- The card status register (正常 / 挂失), append-only: the latest row per card is its status.
CREATE TABLE card_status_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    card_no_sha256  BLOB    NOT NULL CHECK (length(card_no_sha256) = 32),
    status          TEXT    NOT NULL CHECK (status IN ('normal', 'lost')),
    at_ms           INTEGER NOT NULL,
    by_account      TEXT    NOT NULL CHECK (length(by_account) BETWEEN 1 AND 64)
);
CREATE INDEX card_status_by_card ON card_status_events (card_no_sha256, seq);

-- Which applications verified which cards with the holder's consent: they are told when the
-- card is reported lost. card_ref: the application's pseudonymous reference of the card.
CREATE TABLE partner_card_links (
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    card_no_sha256  BLOB    NOT NULL CHECK (length(card_no_sha256) = 32),
    card_ref        TEXT    NOT NULL,
    card_no_masked  TEXT    NOT NULL,
    first_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (app_id, card_no_sha256)
);

-- The webhook outbox: one row per (event, application), written in the transaction that made
-- the event (a card reported lost) or by the settlement feed; delivered at least once with
-- retries and backoff. state: 'pending', 'delivered', 'failed' (attempts exhausted).
CREATE TABLE partner_webhooks (
    event_id        TEXT    PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 80),
    app_id          TEXT    NOT NULL REFERENCES partner_apps (app_id),
    event_type      TEXT    NOT NULL CHECK (event_type IN ('settlement.done', 'card.lost')),
    body            TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_at_ms      INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at_ms INTEGER
);
CREATE INDEX partner_webhooks_due ON partner_webhooks (state, next_at_ms);

-- Feed cursors: the last ledger posting seq the settlement feed has turned into events.
CREATE TABLE partner_feeds (
    feed            TEXT    PRIMARY KEY,
    seq             INTEGER NOT NULL
);
