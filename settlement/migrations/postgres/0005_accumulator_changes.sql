-- Year-to-date accumulator changes as ONE row per settlement (sign 1) and per cancellation of it
-- (sign -1), the changes as a JSON object {name: signed fen}, instead of one row per accumulator
-- name (0003's accumulator_deltas): a settlement wrote ~4 rows and ~4 entries of a wide primary
-- key; now one of each. The accumulator is still the sum over rows; nothing is updated in place.
CREATE TABLE accumulator_changes (
    psn_no   TEXT   NOT NULL,
    year     BIGINT NOT NULL CHECK (year BETWEEN 2000 AND 9999),
    setl_id  TEXT   NOT NULL,
    sign     BIGINT NOT NULL CHECK (sign IN (1, -1)),
    -- {"name": signed fen, ...}: integers, a cancellation row carries the negated amounts.
    deltas   TEXT   NOT NULL,
    PRIMARY KEY (psn_no, year, setl_id, sign)
);

-- Upgrade with the processes of the previous version stopped: they write accumulator_deltas.
-- The lock waits for any such write in flight to commit and keeps new ones out until the table
-- is gone, so no row is left behind by the copy below.
LOCK TABLE accumulator_deltas IN EXCLUSIVE MODE;

INSERT INTO accumulator_changes (psn_no, year, setl_id, sign, deltas)
SELECT psn_no, year, setl_id, sign, json_object_agg(name, delta_fen ORDER BY name)::text
FROM accumulator_deltas
GROUP BY psn_no, year, setl_id, sign;

DROP TABLE accumulator_deltas;
