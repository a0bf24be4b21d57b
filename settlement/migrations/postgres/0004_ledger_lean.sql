-- Constraints the group-commit writer already proves inside its own transaction, dropped from
-- the hot path (settle_bench: each leg paid two foreign-key probes, ~6 µs of PostgreSQL CPU per
-- leg measured on 400,000 legs; ARCHITECTURE.md "The pooled fund is a hot account").
--
-- legs.posting_seq: the only writer of legs (store/batch.rs insert_legs) takes each seq from the
-- RETURNING of the postings insert of the same transaction, and legs and postings are immutable
-- (triggers in 0001), so a leg cannot name a missing posting.
-- legs.account_id: the same transaction locks every account its legs name
-- (`SELECT ... FOR UPDATE`, lock_accounts) and rejects the posting when one is missing; accounts
-- are never deleted. `Ledger::verify` re-checks that every leg's account exists (and is of the
-- posting's region).
ALTER TABLE legs DROP CONSTRAINT legs_posting_seq_fkey;
ALTER TABLE legs DROP CONSTRAINT legs_account_id_fkey;

-- settlements.posting_id is derived from the message id (medical::ids::posting_id_of) and
-- settlements.msgid is UNIQUE, so the second unique index only cost writes; nothing reads by it.
ALTER TABLE settlements DROP CONSTRAINT settlements_posting_id_key;

-- No schema change, noted here because 0003's comment on nhsa_messages.reply no longer holds for
-- settlements: from this version a 2207/2304 message record keeps an EMPTY reply, the settlement
-- output being stored once in settlements.setlinfo (same msgid); Store::message reads it through
-- (medical::StoredReply). Rows written before keep their full reply and read as before. A process
-- of an earlier version would answer a repeat of such a msgid with an error, so upgrade with the
-- earlier version's processes stopped.
