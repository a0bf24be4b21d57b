-- Medical settlement at the national interface (issue 5), PostgreSQL dialect. Kept column-for-column
-- equal to migrations/sqlite/0003_medical.sql: one set of queries serves both databases.
-- (0002 is left to the reference-data tables of the policy work, should they need one.)
--
-- Every table here is APPEND-ONLY: a state change is a new row (a cancellation, a reversal, a
-- negative accumulator delta), never an UPDATE. That is what lets these rows ride in the ledger's
-- group-commit batches as plain multi-row INSERTs, in the same transaction as the posting they
-- belong to, and what makes a replay after a crash trivially consistent.
-- Money is BIGINT fen, never REAL.

-- The idempotency record: one row per msgid answered. Written BEFORE the reply, in the same
-- transaction as whatever the message changed (for 2207/2208/2601 the ledger posting).
CREATE TABLE nhsa_messages (
    -- The sender's msgid (fixmedins_code + yyyyMMddHHmmss + 4 digits, up to 30 chars).
    msgid          TEXT    PRIMARY KEY CHECK (length(msgid) BETWEEN 1 AND 30),
    infno          TEXT    NOT NULL CHECK (length(infno) = 4),
    -- SHA-256 of the canonical request (envelope fields that matter + input): a repeat of the
    -- msgid with another hash is refused.
    request_sha256 BYTEA    NOT NULL CHECK (length(request_sha256) = 32),
    -- 'D' done (reply below is the outcome), 'L' the outcome is the ledger posting's (posted:
    -- reply below; rejected: rebuilt from the stored rejection), 'V' void (a 2601 arrived before
    -- the original: a late arrival of this msgid is refused).
    status         TEXT    NOT NULL CHECK (status IN ('D', 'L', 'V')),
    posting_id     BYTEA    CHECK (posting_id IS NULL OR length(posting_id) = 16),
    psn_no         TEXT    NOT NULL,
    -- The full reply envelope's `output` and error as JSON text (what a repeat gets back).
    reply          TEXT    NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

-- Insured persons imported from CSV (refdata). ID and card numbers are stored only as SHA-256
-- lookup keys; the record is the loader's JSON.
CREATE TABLE persons (
    psn_no          TEXT    PRIMARY KEY CHECK (length(psn_no) BETWEEN 1 AND 30),
    certno_sha256   BYTEA    NOT NULL,
    card_no_sha256  BYTEA,
    insuplc_admdvs  BIGINT NOT NULL CHECK (insuplc_admdvs BETWEEN 0 AND 999999),
    record          TEXT    NOT NULL
);
CREATE INDEX persons_by_certno ON persons (certno_sha256);
CREATE INDEX persons_by_card ON persons (card_no_sha256);

-- Visits: outpatient registrations (2201, setting 'O') and admissions (2401, setting 'I').
CREATE TABLE visits (
    mdtrt_id        TEXT    PRIMARY KEY CHECK (length(mdtrt_id) BETWEEN 1 AND 30),
    psn_no          TEXT    NOT NULL,
    insutype        TEXT    NOT NULL,
    insuplc_admdvs  BIGINT NOT NULL CHECK (insuplc_admdvs BETWEEN 0 AND 999999),
    mdtrtarea_admvs BIGINT NOT NULL CHECK (mdtrtarea_admvs BETWEEN 0 AND 999999),
    fixmedins_code  TEXT    NOT NULL,
    setting         TEXT    NOT NULL CHECK (setting IN ('O', 'I')),
    med_type        TEXT    NOT NULL,
    begntime        TEXT    NOT NULL,
    msgid           TEXT    NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX visits_by_person ON visits (psn_no);

-- Later events of a visit: 'C' cancelled (2202/2404), 'I' visit information (2203), 'D'
-- discharged (2402). `detail` is JSON.
CREATE TABLE visit_events (
    mdtrt_id      TEXT    NOT NULL REFERENCES visits (mdtrt_id),
    kind          TEXT    NOT NULL CHECK (kind IN ('C', 'I', 'D')),
    msgid         TEXT    NOT NULL UNIQUE,
    detail        TEXT    NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX visit_events_by_visit ON visit_events (mdtrt_id);

-- Classified fee lines (2204/2301): SIGNED amounts in fen (a refund line is negative) as classified with the treating region's
-- catalogue; `line` is the line as received plus its classification, JSON.
CREATE TABLE fee_lines (
    mdtrt_id                 TEXT    NOT NULL REFERENCES visits (mdtrt_id),
    feedetl_sn               TEXT    NOT NULL CHECK (length(feedetl_sn) BETWEEN 1 AND 30),
    chrg_bchno               TEXT    NOT NULL,
    msgid                    TEXT    NOT NULL,
    med_list_codg            TEXT    NOT NULL,
    line                     TEXT    NOT NULL,
    det_item_fee_sumamt_fen  BIGINT NOT NULL,
    fulamt_ownpay_amt_fen    BIGINT NOT NULL,
    overlmt_amt_fen          BIGINT NOT NULL,
    preselfpay_amt_fen       BIGINT NOT NULL,
    inscp_scp_amt_fen        BIGINT NOT NULL,
    PRIMARY KEY (mdtrt_id, feedetl_sn)
);

-- Cancelled fee lines (2205/2302).
CREATE TABLE fee_cancels (
    mdtrt_id   TEXT NOT NULL,
    feedetl_sn TEXT NOT NULL,
    msgid      TEXT NOT NULL,
    PRIMARY KEY (mdtrt_id, feedetl_sn)
);

-- Committed settlements (2207/2304), written in the ledger batch that posts `posting_id`.
CREATE TABLE settlements (
    setl_id             TEXT    PRIMARY KEY CHECK (length(setl_id) BETWEEN 1 AND 30),
    msgid               TEXT    NOT NULL UNIQUE,
    posting_id          BYTEA    NOT NULL UNIQUE CHECK (length(posting_id) = 16),
    mdtrt_id            TEXT    NOT NULL,
    psn_no              TEXT    NOT NULL,
    insutype            TEXT    NOT NULL,
    insuplc_admdvs      BIGINT NOT NULL CHECK (insuplc_admdvs BETWEEN 0 AND 999999),
    fixmedins_code      TEXT    NOT NULL,
    -- yyyy-MM-dd, the reconciliation (3201) date.
    setl_date           TEXT    NOT NULL,
    medfee_sumamt_fen   BIGINT NOT NULL CHECK (medfee_sumamt_fen >= 0),
    fund_pay_sumamt_fen BIGINT NOT NULL CHECK (fund_pay_sumamt_fen >= 0),
    acct_pay_fen        BIGINT NOT NULL CHECK (acct_pay_fen >= 0),
    psn_cash_pay_fen    BIGINT NOT NULL CHECK (psn_cash_pay_fen >= 0),
    -- The 2207/2304 output (setlinfo + setldetail) as JSON.
    setlinfo            TEXT    NOT NULL
);
CREATE INDEX settlements_by_visit ON settlements (mdtrt_id);
CREATE INDEX settlements_by_institution ON settlements (fixmedins_code, setl_date);

-- Cancellations (2208/2305, kind 'C') and reversals (2601, kind 'R') of settlements. At most one
-- per settlement: the ledger itself refuses a second reversal of the same posting, and the rows
-- are only written when the reversing posting is posted.
CREATE TABLE settlement_cancels (
    setl_id    TEXT NOT NULL PRIMARY KEY REFERENCES settlements (setl_id),
    msgid      TEXT NOT NULL UNIQUE,
    posting_id BYTEA NOT NULL UNIQUE CHECK (length(posting_id) = 16),
    kind       TEXT NOT NULL CHECK (kind IN ('C', 'R')),
    setl_date  TEXT NOT NULL
);

-- Year-to-date accumulators (起付线 used, fund paid, ...) as signed deltas: +1 rows from a
-- settlement, -1 rows from its cancellation. The accumulator is the sum; nothing drifts because
-- nothing is updated in place.
CREATE TABLE accumulator_deltas (
    psn_no    TEXT    NOT NULL,
    year      BIGINT NOT NULL CHECK (year BETWEEN 2000 AND 9999),
    setl_id   TEXT    NOT NULL,
    sign      BIGINT NOT NULL CHECK (sign IN (1, -1)),
    name      TEXT    NOT NULL,
    -- Signed fen (a cancellation row carries the negated amount).
    delta_fen BIGINT NOT NULL,
    PRIMARY KEY (psn_no, year, setl_id, sign, name)
);
