-- Terminal transaction ids (issue 7), sqlite dialect; column-for-column equal to the other dialect.
-- A terminal names each purchase with its own id (unique per terminal) so that it can reverse a
-- purchase whose answer it never received. One row per (terminal, id), written either with the
-- purchase's pay_txns row (same database transaction, txn_id set) or by the terminal's reversal
-- when the purchase never arrived (txn_id NULL: the id is void and a late purchase carrying it
-- is refused). The primary key makes the two orders exclusive.
CREATE TABLE pay_terminal_txns (
    terminal_id     TEXT    NOT NULL CHECK (length(terminal_id) = 8),
    terminal_txn_id TEXT    NOT NULL CHECK (length(terminal_txn_id) BETWEEN 1 AND 32),
    merchant_id     TEXT    NOT NULL CHECK (length(merchant_id) = 15),
    -- The purchase (pay_txns.txn_id), or NULL for an id voided before any purchase arrived.
    txn_id          TEXT    REFERENCES pay_txns (txn_id),
    created_at_ms   INTEGER    NOT NULL,
    PRIMARY KEY (terminal_id, terminal_txn_id)
);
