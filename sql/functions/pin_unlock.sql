-- `kondge cards unlock` (kondge_billing/pin_guard.py, which writes the audit
-- record): forget the wrong PINs of a card number, a caller number or a
-- gateway (its id) and lift its lock. Returns what was forgotten (no row:
-- nothing was counted); locked_until only if it was locked. SECURITY
-- DEFINER: operators change no counter but through it.
CREATE OR REPLACE FUNCTION kondge.pin_unlock(p_scope text, p_key text)
RETURNS TABLE (failures integer, locks integer, locked_until text)
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
    DELETE FROM kondge.pin_guard g WHERE g.scope = p_scope AND g.key = p_key
    RETURNING g.failures, g.locks,
              CASE WHEN g.locked_until > now() THEN g.locked_until::text END;
$$;
