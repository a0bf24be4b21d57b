-- Card sign-in, personal data and the card-use trail (issue 8), SQLite dialect. Kept
-- column-for-column equal to migrations/postgres/0500_identity.sql: one set of queries serves both.
--
-- No clear ID number, name, person number or card number is stored here: names and numbers are
-- AES-256-GCM ciphertexts under a data key that the hsm wraps (identity_data_keys), and what is
-- only ever matched is a keyed hash (HMAC-SHA-256 under a second wrapped key), never a plain
-- SHA-256 that a dictionary of 18-digit ID numbers would invert.
-- Times are Unix milliseconds UTC; business days (day) are Asia/Shanghai dates, yyyy-MM-dd.

-- The personal-data keys: 32-byte AES-256-GCM and HMAC-SHA-256 keys, each wrapped (AES-256
-- ECB over the two blocks) by the hsm's D0 key `kek_alias` (whose KCV is kept to name it).
-- check_value = AES-GCM of a fixed label under the data key: a wrong KEK is found at open.
CREATE TABLE identity_data_keys (
    key_id        INTEGER PRIMARY KEY CHECK (key_id BETWEEN 1 AND 1000000),
    kek_alias     TEXT    NOT NULL,
    kek_kcv       TEXT    NOT NULL CHECK (length(kek_kcv) = 6),
    aead_wrapped  BLOB    NOT NULL CHECK (length(aead_wrapped) = 32),
    hmac_wrapped  BLOB    NOT NULL CHECK (length(hmac_wrapped) = 32),
    check_value   BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- Sign-in challenges: the terminal random of one INTERNAL AUTHENTICATE. Single use: consuming
-- sets used_at_ms with `WHERE used_at_ms IS NULL`, so a replayed answer finds it used.
CREATE TABLE identity_challenges (
    challenge_id    TEXT    PRIMARY KEY CHECK (length(challenge_id) = 32),
    terminal_random BLOB    NOT NULL CHECK (length(terminal_random) = 8),
    -- The gateway caller (x-tif-paasid) that asked; '' when the gateway check is off.
    terminal        TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    used_at_ms      INTEGER
);

-- Holders who signed in at least once: the pseudonym `holder_id` (first 32 hex digits of
-- HMAC(psn_no)) is the token's `sub` and the key of every row below; the person's number, name
-- and ID number are ciphertexts (12-byte nonce ‖ ciphertext ‖ 16-byte tag), certno_hmac serves
-- matching (a partner's "is this the person with ID number X?").
CREATE TABLE identity_holders (
    holder_id      TEXT    PRIMARY KEY CHECK (length(holder_id) = 32),
    key_id         INTEGER NOT NULL REFERENCES identity_data_keys (key_id),
    psn_no_ct      BLOB    NOT NULL,
    name_ct        BLOB    NOT NULL,
    certno_ct      BLOB    NOT NULL,
    certno_hmac    BLOB    NOT NULL CHECK (length(certno_hmac) = 32),
    insuplc_admdvs INTEGER NOT NULL CHECK (insuplc_admdvs BETWEEN 0 AND 999999),
    updated_at_ms  INTEGER NOT NULL
);
CREATE INDEX identity_holders_by_certno ON identity_holders (certno_hmac);

-- Cards seen at sign-in, by keyed hash of the 卡识别码 (EF05 tag 01). The first sign-in binds
-- the card to its holder (the issuer's card register is not part of this platform); a later
-- sign-in naming another person with the same card is refused. status 'A' active, 'L' lost.
CREATE TABLE identity_cards (
    card_hmac     BLOB    PRIMARY KEY CHECK (length(card_hmac) = 32),
    holder_id     TEXT    NOT NULL,
    card_no_hmac  BLOB    NOT NULL CHECK (length(card_no_hmac) = 32),
    -- 发卡地区: the first 6 digits of the 卡识别码.
    issuer_admdvs INTEGER NOT NULL CHECK (issuer_admdvs BETWEEN 0 AND 999999),
    status        TEXT    NOT NULL CHECK (status IN ('A', 'L')),
    first_seen_ms INTEGER NOT NULL,
    lost_at_ms    INTEGER
);
CREATE INDEX identity_cards_by_holder ON identity_cards (holder_id);
CREATE INDEX identity_cards_by_card_no ON identity_cards (card_no_hmac);

-- Card numbers (卡号) reported lost, by keyed hash: a card never seen at sign-in can be reported
-- too, and is refused at its first sign-in. `reporter` is the terminal or operator account.
CREATE TABLE identity_lost_cards (
    card_no_hmac  BLOB    PRIMARY KEY CHECK (length(card_no_hmac) = 32),
    reporter      TEXT    NOT NULL,
    reported_at_ms INTEGER NOT NULL
);

-- Sign-in sessions: one per token. A token is valid while its row is neither expired nor
-- revoked ('signout', 'card_lost', 'admin').
CREATE TABLE identity_sessions (
    sid            TEXT    PRIMARY KEY CHECK (length(sid) = 32),
    holder_id      TEXT    NOT NULL,
    card_hmac      BLOB    NOT NULL CHECK (length(card_hmac) = 32),
    -- 'card' (INTERNAL AUTHENTICATE) or 'card+pin' (and the PIN verified at the card).
    acr            TEXT    NOT NULL CHECK (acr IN ('card', 'card+pin')),
    terminal       TEXT    NOT NULL,
    issued_at_ms   INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    revoked_at_ms  INTEGER,
    revoked_reason TEXT    CHECK (revoked_reason IS NULL OR revoked_reason IN ('signout', 'card_lost', 'admin'))
);
CREATE INDEX identity_sessions_by_card ON identity_sessions (card_hmac);
CREATE INDEX identity_sessions_by_holder ON identity_sessions (holder_id);

-- The outbox of identity events other modules consume (the partner platform's "card reported
-- lost" webhook): written in the transaction that made the change. event_id is time-ordered
-- (13 hex digits of ms ‖ 19 random hex digits).
CREATE TABLE identity_events (
    event_id      TEXT    PRIMARY KEY CHECK (length(event_id) = 32),
    kind          TEXT    NOT NULL CHECK (kind IN ('card_lost')),
    holder_id     TEXT    NOT NULL,
    -- JSON without personal data (the holder pseudonym, the card's issuing region, counts).
    detail        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- Every read of a holder's personal data by an operator or a partner, with the reason given;
-- the holder lists their own (GET /identity/v1/me/reads).
CREATE TABLE identity_pii_reads (
    read_id       TEXT    PRIMARY KEY CHECK (length(read_id) = 32),
    holder_id     TEXT    NOT NULL,
    -- 'operator' (console) or 'partner' (partner platform).
    reader_kind   TEXT    NOT NULL CHECK (reader_kind IN ('operator', 'partner')),
    reader        TEXT    NOT NULL,
    -- What was read: comma-separated field names (name, certno, psn_no, trail).
    fields        TEXT    NOT NULL,
    reason        TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 400),
    at_ms         INTEGER NOT NULL
);
CREATE INDEX identity_pii_reads_by_holder ON identity_pii_reads (holder_id, at_ms);

-- The card-use trail (用卡轨迹): one row per use of a card. `ref` names the row that caused it
-- (setl_id, txn_id, session id ...), unique per kind so that copying from another table is
-- idempotent. holder_id may be '' when the use cannot be tied to a holder (a bank card payment).
CREATE TABLE card_trail (
    event_id      TEXT    PRIMARY KEY CHECK (length(event_id) = 32),
    kind          TEXT    NOT NULL CHECK (kind IN ('read', 'settlement', 'payment', 'partner_verification', 'signin')),
    ref           TEXT    NOT NULL,
    holder_id     TEXT    NOT NULL,
    -- Where the card was used (就医地 for a settlement, the terminal's region otherwise).
    admdvs        INTEGER NOT NULL CHECK (admdvs BETWEEN 0 AND 999999),
    -- The directory category (就业创业, 社会保险, 医疗保障, 金融服务, 公共服务 ...).
    category      TEXT    NOT NULL,
    -- Who served the use: institution code, terminal (paas id), partner id.
    actor         TEXT    NOT NULL,
    day           TEXT    NOT NULL CHECK (length(day) = 10),
    at_ms         INTEGER NOT NULL,
    UNIQUE (kind, ref)
);
CREATE INDEX card_trail_by_holder ON card_trail (holder_id, at_ms);
CREATE INDEX card_trail_by_day ON card_trail (day, admdvs);
