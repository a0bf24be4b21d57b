-- Card payments through the switch (issue 7), postgres dialect. Kept column-for-column equal to the
-- other dialect's 0100_payments.sql: one set of queries serves both databases.
-- Money is BIGINT fen (exact 64-bit), never a float. No clear PAN is stored anywhere: only the
-- masked PAN (first 6, last 4) for the clearing file and a salted hash for risk checks.

-- One row per transaction the switch sent (or refused) toward an issuer. The acquirer key is
-- (terminal_id, stan, transmission): what the ISO 8583 response is matched on.
CREATE TABLE pay_txns (
    txn_id          TEXT    PRIMARY KEY,
    -- 'purchase' (0200 proc 00), 'refund' (0200 proc 20), 'void' (0200 proc 02, same day).
    kind            TEXT    NOT NULL CHECK (kind IN ('purchase', 'refund', 'void')),
    bank_code       TEXT    NOT NULL,
    terminal_id     TEXT    NOT NULL CHECK (length(terminal_id) = 8),
    merchant_id     TEXT    NOT NULL CHECK (length(merchant_id) = 15),
    stan            TEXT    NOT NULL CHECK (length(stan) = 6),
    rrn             TEXT    NOT NULL CHECK (length(rrn) = 12),
    transmission    TEXT    NOT NULL CHECK (length(transmission) = 10),
    pan_masked      TEXT    NOT NULL,
    -- SHA-256 of (deployment salt ‖ PAN), hex: what risk checks key on.
    pan_sha256      TEXT    NOT NULL CHECK (length(pan_sha256) = 64),
    -- Requested amount, fen (> 0).
    amount_fen      BIGINT    NOT NULL CHECK (amount_fen > 0),
    -- Amount the issuer approved (partial approvals, 39 = 10), fen; 0 until approved.
    approved_fen    BIGINT    NOT NULL DEFAULT 0 CHECK (approved_fen >= 0),
    response_code   TEXT,
    -- 'sent' (armed reversal, no answer yet), 'approved', 'declined', 'timed_out' (reversal
    -- pending or acknowledged), 'voided' (a purchase undone by a same-day void).
    status          TEXT    NOT NULL CHECK (status IN ('sent', 'approved', 'declined', 'timed_out', 'voided')),
    -- The purchase a refund or void refers to.
    original_txn_id TEXT,
    -- The ledger posting of an approval (hex of the 16-byte posting id).
    posting_id      TEXT,
    -- Business date YYYYMMDD (China time) for the cut-off.
    business_date   TEXT    NOT NULL CHECK (length(business_date) = 8),
    created_at_ms   BIGINT    NOT NULL
);
CREATE INDEX pay_txns_day ON pay_txns (business_date, bank_code);
CREATE INDEX pay_txns_rrn ON pay_txns (rrn);
CREATE INDEX pay_txns_pan ON pay_txns (pan_sha256, created_at_ms);

-- The reversal (0400) outbox, store and forward: the row is written ARMED in the same
-- transaction as the pay_txns row, BEFORE the request leaves; an answer in time cancels it, no
-- answer (or a crash) makes it PENDING, and it is sent until the issuer acknowledges (0410),
-- across restarts. The message holds no PAN (the issuer matches on field 90).
CREATE TABLE pay_reversals (
    txn_id          TEXT    PRIMARY KEY REFERENCES pay_txns (txn_id),
    bank_code       TEXT    NOT NULL,
    -- The packed 0400 without its MAC field, hex (the MAC is computed at each send).
    message_hex     TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('armed', 'pending', 'acknowledged', 'cancelled')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    updated_at_ms   BIGINT    NOT NULL
);
CREATE INDEX pay_reversals_state ON pay_reversals (state);

-- Cards refused before routing (blocked, lost, stolen), by PAN hash.
CREATE TABLE pay_card_blocks (
    pan_sha256      TEXT    PRIMARY KEY CHECK (length(pan_sha256) = 64),
    -- ISO 8583:1987 response code to answer: '41' lost, '43' stolen, '62' restricted/blocked.
    response_code   TEXT    NOT NULL CHECK (response_code IN ('41', '43', '62')),
    created_at_ms   BIGINT    NOT NULL
);
