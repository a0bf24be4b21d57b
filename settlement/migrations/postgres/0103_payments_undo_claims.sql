-- Who undoes an approved purchase (issue 7), postgres dialect; column-for-column equal to the other
-- dialect. A same-day void and a terminal's reversal of the same purchase must not both reverse
-- it: each claims the purchase here (INSERT ... ON CONFLICT DO NOTHING) before anything is sent
-- or posted, and the primary key lets exactly one of them in. A void that the issuer does not
-- approve gives its claim back (the purchase stands and may be undone later); a reversal keeps
-- its claim, so a retry after a crash finishes what it started.
CREATE TABLE pay_undo_claims (
    -- The purchase (pay_txns.txn_id).
    txn_id        TEXT    PRIMARY KEY REFERENCES pay_txns (txn_id),
    claimed_by    TEXT    NOT NULL CHECK (claimed_by IN ('void', 'reversal')),
    created_at_ms BIGINT NOT NULL
);
