-- A card's first charged call starts its validity clock in the same UPDATE
-- as its new balance (sql/functions/post_ledger.sql, radius_settle.sql):
-- post_ledger takes the first use as two optional arguments. The old
-- signature goes, so that a call with five arguments names one function.
SET search_path = kondge, public;

DROP FUNCTION IF EXISTS post_ledger(bigint[], numeric[], text, text[], text);
