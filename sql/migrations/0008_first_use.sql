-- A card's first use is its first answered call, whatever it cost (a free
-- call starts an after-first-use clock too): the clock is started by the
-- call's CDR, not by a ledger charge, which a free call does not write.
SET search_path = kondge, public;

DROP TRIGGER ledger_entry_first_use ON ledger_entry;
CREATE TRIGGER cdr_first_use AFTER INSERT ON cdr
    FOR EACH ROW WHEN (NEW.card_id IS NOT NULL AND NEW.duration > 0)
    EXECUTE FUNCTION card_first_use();
