-- The ledger writer's one-statement batch (store/batch.rs `one_statement`) calls this on what its
-- balance UPDATE returned: unless every touched account qualified, the whole statement is refused
-- (check_violation), nothing of it is written, and the writer decides the batch in a transaction.
-- PostgreSQL only: SQLite batches are in-process and always take the transaction.
CREATE FUNCTION ledger_batch_assert(ok BOOLEAN) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ledger batch does not qualify for one statement'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN TRUE;
END
$$;
