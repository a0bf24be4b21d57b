-- Inter-region clearing runs and the hospitals' monthly clearing confirmations (issue 6).
-- Append-only like 0300_region.sql; PostgreSQL dialect, column-for-column equal to
-- migrations/sqlite/0301_region_clearing.sql. Money is BIGINT fen.

-- The clearing settlement of one origin (treating) node's window toward one counter-region, at
-- both ends: role 'O' on the origin node, written with its settlement posting and the outbox
-- message to the counter node in one transaction; role 'C' on the counter node, written with the
-- mirror posting. `amounts` is the JSON list of what was settled per fund, fen (+: the counter
-- region pays the origin region; − the other way, when reversals outweigh claims).
CREATE TABLE region_clearings (
    origin_admdvs  BIGINT NOT NULL,
    window_id      BIGINT NOT NULL,
    counter_admdvs BIGINT NOT NULL,
    role           TEXT   NOT NULL CHECK (role IN ('O', 'C')),
    amounts        TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (origin_admdvs, window_id, counter_admdvs, role)
);

-- A hospital's answers (3261 异地清分结果确认) to its monthly cross-region clearing detail
-- (3260), one row per line, and the rollbacks of a month's answers (3262, `setl_sn` empty,
-- `cnfm_flag` 'X'). `cnfm_flag` '1' agreed, '0' disputed. The month is `yyyy-MM`.
CREATE TABLE region_confirms (
    fixmedins_code TEXT   NOT NULL,
    trt_month      TEXT   NOT NULL CHECK (length(trt_month) = 7),
    setl_sn        TEXT   NOT NULL,
    cnfm_flag      TEXT   NOT NULL CHECK (cnfm_flag IN ('0', '1', 'X')),
    msgid          TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (msgid, setl_sn)
);
CREATE INDEX region_confirms_month ON region_confirms (fixmedins_code, trt_month);
