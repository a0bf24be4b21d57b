-- Ledger schema, SQLite dialect (the embedded default). Kept column-for-column equal to
-- migrations/postgres/0001_ledger.sql so that one set of queries serves both databases.
--
-- Money is INTEGER fen (SQLite INTEGER is an exact 64-bit integer). Never REAL: a binary float
-- cannot hold 0.10 yuan exactly, and a ledger must add up to the fen.

-- One row per account. Balances are written once per group-commit batch (the aggregated delta),
-- never per posting, so the hot pooled-fund row costs one UPDATE per batch.
CREATE TABLE accounts (
    -- Ledger-assigned id (rowid alias: a 64-bit integer).
    id             INTEGER PRIMARY KEY,
    -- Region (6-digit 医保区划 as a number, leading zeros restored on display).
    admdvs         INTEGER NOT NULL CHECK (admdvs BETWEEN 0 AND 999999),
    -- AccountKind number (1 fund, 2 personal, 3 institution receivable, 4 patient cash, 5 clearing).
    kind           INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 32767),
    -- fund_pay_type, fixmedins_code, pseudonymous person reference, counterparty: short ASCII.
    code           TEXT    NOT NULL CHECK (length(code) BETWEEN 1 AND 32),
    -- Bit 0: debits_must_not_exceed_credits; bit 1: credits_must_not_exceed_debits.
    flags          INTEGER NOT NULL CHECK (flags BETWEEN 0 AND 3 AND flags <> 3),
    -- Sums of posted legs in fen: exact integers, only ever grow.
    debits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Backstop for the balance conditions the writer checks in memory: a bug there aborts the
    -- batch instead of committing an overdraft.
    CHECK ((flags & 1) = 0 OR debits_posted <= credits_posted),
    CHECK ((flags & 2) = 0 OR credits_posted <= debits_posted),
    UNIQUE (admdvs, kind, code)
);

-- One row per submitted posting id, posted or rejected: the idempotency record and the journal
-- header. Rows are never updated or deleted (triggers below).
CREATE TABLE postings (
    -- Commit order (rowid alias), used for paging and replay.
    seq            INTEGER PRIMARY KEY,
    -- Client id, 16 bytes big-endian. Time-ordered (UUIDv7-like), so the unique index grows at its
    -- right edge (limits.md §1c, §2: random keys wreck batch throughput).
    id             BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    admdvs         INTEGER NOT NULL CHECK (admdvs BETWEEN 0 AND 999999),
    -- SHA-256 of the canonical content: a repeat of the id with another hash is refused.
    content_sha256 BLOB    NOT NULL CHECK (length(content_sha256) = 32),
    -- 'P' posted (has legs), 'R' rejected (no legs; the reason is stored so a retry gets it again).
    status         TEXT    NOT NULL CHECK (status IN ('P', 'R')),
    reject_code    INTEGER CHECK ((status = 'R') = (reject_code IS NOT NULL)),
    reject_account INTEGER,
    -- 'R' reverses, 'K' corrects; the target's client id.
    link_kind      TEXT    CHECK (link_kind IN ('R', 'K')),
    link_target    BLOB    CHECK ((link_kind IS NULL) = (link_target IS NULL)),
    -- Wall-clock time of the batch commit, Unix milliseconds (informational; order is seq).
    posted_at_ms   INTEGER NOT NULL
);

-- A posted posting is reversed at most once, even by writers in other processes.
CREATE UNIQUE INDEX postings_one_reversal ON postings (link_target)
    WHERE link_kind = 'R' AND status = 'P';

-- The legs of posted postings.
CREATE TABLE legs (
    posting_seq INTEGER NOT NULL REFERENCES postings (seq),
    leg_no      INTEGER NOT NULL CHECK (leg_no >= 0),
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    side        TEXT    NOT NULL CHECK (side IN ('D', 'C')),
    -- Fen, strictly positive: the side carries the direction.
    amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (posting_seq, leg_no)
);
CREATE INDEX legs_by_account ON legs (account_id, posting_seq);

-- Immutability of the journal, enforced by the database itself.
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;
CREATE TRIGGER legs_no_update BEFORE UPDATE ON legs
BEGIN SELECT RAISE(ABORT, 'legs are immutable'); END;
CREATE TRIGGER legs_no_delete BEFORE DELETE ON legs
BEGIN SELECT RAISE(ABORT, 'legs are immutable'); END;
