-- `kondge cards unlock` (kondge_billing/pin_guard.py, which writes the audit
-- record): forget the wrong PINs of a card (by number), a caller number or
-- a gateway (its id) and lift its lock. Returns what was forgotten (no row:
-- nothing was counted); locked_until only if it was locked. SECURITY
-- DEFINER: operators change no counter but through it.
CREATE OR REPLACE FUNCTION kondge.pin_unlock(p_scope text, p_key text)
RETURNS TABLE (failures integer, locks integer, locked_until text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
BEGIN
    IF p_scope = 'card' THEN
        RETURN QUERY
        WITH old AS (SELECT c.id, c.pin_failures, c.pin_locks, c.pin_locked_until
                       FROM kondge.card c WHERE c.number = p_key FOR UPDATE)
        UPDATE kondge.card c SET pin_failures = 0, pin_locks = 0, pin_locked_until = NULL
          FROM old
         WHERE c.id = old.id AND (old.pin_failures > 0 OR old.pin_locks > 0
                                  OR old.pin_locked_until IS NOT NULL)
        RETURNING old.pin_failures, old.pin_locks,
                  CASE WHEN old.pin_locked_until > now() THEN old.pin_locked_until::text END;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    DELETE FROM kondge.pin_guard g WHERE g.scope = p_scope AND g.key = p_key
    RETURNING g.failures, g.locks,
              CASE WHEN g.locked_until > now() THEN g.locked_until::text END;
END;
$$;
