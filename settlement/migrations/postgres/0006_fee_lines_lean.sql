-- fee_lines.mdtrt_id: the foreign key to visits cost every fee line a referential check
-- (`SELECT 1 FROM ONLY visits ... FOR KEY SHARE`, an index probe plus a row lock that dirties the
-- visit's heap page: ~14 µs of PostgreSQL time per line, auto_explain on settle_bench, 2204
-- with one line). It proves nothing the writer does not: a 2204/2301 is classified against the
-- visit it loaded (`Medical::live_visit`, which refuses an unknown, cancelled or other person's
-- visit) and written only after that visit's registration committed (2201/2401 answer after
-- their commit); visits are never deleted (every medical table is append-only). SQLite keeps the
-- key: its check is a cheap in-process probe.
ALTER TABLE fee_lines DROP CONSTRAINT fee_lines_mdtrt_id_fkey;
