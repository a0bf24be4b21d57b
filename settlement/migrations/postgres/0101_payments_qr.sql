-- QR payment tokens (issue 7), postgres dialect; column-for-column equal to the other dialect.
-- A partner's dynamic QR token is single use: its id is written here, in the same breath as it
-- is accepted, and a second presentation hits the primary key (response code 94).
CREATE TABLE pay_qr_tokens (
    -- Partner code and the partner's token id (32 hex digits): unique per partner.
    partner         TEXT    NOT NULL,
    token_id        TEXT    NOT NULL CHECK (length(token_id) = 32),
    terminal_id     TEXT    NOT NULL,
    amount_fen      BIGINT    NOT NULL CHECK (amount_fen > 0),
    used_at_ms      BIGINT    NOT NULL,
    PRIMARY KEY (partner, token_id)
);
