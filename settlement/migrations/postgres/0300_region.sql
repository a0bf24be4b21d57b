-- Cross-region direct settlement between region nodes (issue 6), PostgreSQL dialect. Kept
-- column-for-column equal to migrations/sqlite/0300_region.sql. Append-only like 0003: a state
-- change is a new row, so these rows ride in the ledger writer's batches with the posting they
-- belong to (outbox in the same transaction as the ledger change).
-- Money is BIGINT fen.

-- Treating side (就医地): the life of one cross-region settlement, one row per state reached.
-- 'I' intent (written before the insured node is asked), 'S' settled here (with the posting),
-- 'F' finished without money (refused, or voided at the insured node), 'A' abandoned (outcome
-- unknown: a durable reversal is in the outbox), 'C' cancelled/reversed after settling.
CREATE TABLE region_xfers (
    xfer_id        TEXT    NOT NULL CHECK (length(xfer_id) BETWEEN 1 AND 64),
    state          TEXT    NOT NULL CHECK (state IN ('I', 'S', 'F', 'A', 'C')),
    counter_admdvs BIGINT NOT NULL,
    window_id      BIGINT NOT NULL,
    detail         TEXT    NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (xfer_id, state)
);

-- Insured side (参保地): the inbox. kind 'D' the decision (reply JSON: settled with the split, or
-- voided), 'R' the reversal applied. The primary key makes each take effect once.
CREATE TABLE region_inbox (
    xfer_id        TEXT    NOT NULL CHECK (length(xfer_id) BETWEEN 1 AND 64),
    kind           TEXT    NOT NULL CHECK (kind IN ('D', 'R')),
    origin_admdvs  BIGINT NOT NULL,
    request_sha256 BYTEA    NOT NULL CHECK (length(request_sha256) = 32),
    reply          TEXT    NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (xfer_id, kind)
);

-- Clearing events, both sides: this node's signed position toward `counter_admdvs` per fund
-- (+ receivable, − payable), in the ORIGIN (treating) node's clearing window.
CREATE TABLE region_events (
    xfer_id        TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('S', 'R')),
    origin_admdvs  BIGINT NOT NULL,
    window_id      BIGINT NOT NULL,
    counter_admdvs BIGINT NOT NULL,
    fund_pay_type  BIGINT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (xfer_id, kind, fund_pay_type)
);
CREATE INDEX region_events_window ON region_events (origin_admdvs, window_id);

-- Outgoing inter-node messages, delivered at least once until acknowledged.
CREATE TABLE region_outbox (
    msg_id         TEXT    PRIMARY KEY,
    to_admdvs      BIGINT NOT NULL,
    path           TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    window_id      BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE TABLE region_outbox_acks (
    msg_id         TEXT    PRIMARY KEY,
    acked_at_ms    BIGINT NOT NULL
);

-- Closed clearing windows of this node as origin (the current window is the last closed + 1).
CREATE TABLE region_windows (
    window_id      BIGINT PRIMARY KEY,
    closed_at_ms   BIGINT NOT NULL
);
