-- `kondge cards unlock` (kondge_billing/calls/pin_guard.py): forget the wrong PINs
-- of a card (by number), a caller number or a gateway (its id) and lift its
-- lock, with one audit record when there was anything to forget (p_shown:
-- the card, caller or gateway as the operator named it). Returns what was
-- forgotten (no row: nothing was counted); locked_until only if it was
-- locked. SECURITY DEFINER: operators change no counter but through it.
CREATE OR REPLACE FUNCTION kondge.op_pin_unlock(p_operator text, p_scope text, p_key text,
                                                p_shown text)
RETURNS TABLE (failures integer, locks integer, locked_until text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_row record;
    v_found boolean := false;
BEGIN
    IF p_scope NOT IN ('card', 'caller', 'gateway') THEN
        RAISE EXCEPTION 'scope: card, caller or gateway, not %', quote_literal(p_scope)
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_scope = 'card' THEN
        WITH old AS (SELECT c.id, c.pin_failures, c.pin_locks, c.pin_locked_until
                       FROM kondge.card c WHERE c.number = p_key FOR UPDATE)
        UPDATE kondge.card c SET pin_failures = 0, pin_locks = 0, pin_locked_until = NULL
          FROM old
         WHERE c.id = old.id AND (old.pin_failures > 0 OR old.pin_locks > 0
                                  OR old.pin_locked_until IS NOT NULL)
        RETURNING old.pin_failures AS failures, old.pin_locks AS locks,
                  CASE WHEN old.pin_locked_until > now() THEN old.pin_locked_until::text END
                      AS locked_until
        INTO v_row;
        v_found := FOUND;
    END IF;
    IF NOT v_found THEN
        DELETE FROM kondge.pin_guard g WHERE g.scope = p_scope AND g.key = p_key
        RETURNING g.failures, g.locks,
                  CASE WHEN g.locked_until > now() THEN g.locked_until::text END AS locked_until
        INTO v_row;
        v_found := FOUND;
    END IF;
    IF NOT v_found THEN
        RETURN;
    END IF;
    PERFORM kondge.audit_record(p_operator, 'pin unlock', 1,
                                jsonb_build_object(p_scope, p_shown),
                                jsonb_build_object('was_locked_until', v_row.locked_until,
                                                   'wrong_pins', v_row.failures,
                                                   'locks_in_a_row', v_row.locks));
    failures := v_row.failures;
    locks := v_row.locks;
    locked_until := v_row.locked_until;
    RETURN NEXT;
END;
$$;
