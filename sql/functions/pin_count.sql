-- One failure of a caller number or gateway (pin_failed), within its
-- window; a key whose window or lock is over starts counting afresh. At
-- p_tries the key is locked for one window (pin_policy.locks_until follows
-- it). Returns false, counting nothing, when the key is locked already.
CREATE OR REPLACE FUNCTION kondge.pin_count(
    p_key text, p_scope text, p_tries integer, p_window integer,
    p_caller text, p_gateway_id integer)
RETURNS boolean
LANGUAGE plpgsql SET search_path = kondge, public AS $$
DECLARE
    v_row kondge.pin_guard;
BEGIN
    INSERT INTO kondge.pin_guard AS g (scope, key, failures, window_start, last_failure)
    VALUES (p_scope, p_key, 1, now(), now())
    ON CONFLICT (scope, key) DO UPDATE SET
        failures = CASE WHEN g.locked_until <= now()
                          OR g.window_start <= now() - make_interval(secs => p_window)
                        THEN 1 ELSE g.failures + 1 END,
        window_start = CASE WHEN g.locked_until <= now()
                              OR g.window_start <= now() - make_interval(secs => p_window)
                            THEN now() ELSE g.window_start END,
        locked_until = CASE WHEN g.locked_until <= now() THEN NULL ELSE g.locked_until END,
        last_failure = now()
     WHERE NOT coalesce(g.locked_until > now(), false)
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_row.failures >= p_tries THEN
        UPDATE kondge.pin_guard g SET locked_until = now() + make_interval(secs => p_window)
         WHERE g.scope = p_scope AND g.key = p_key
        RETURNING * INTO v_row;
        -- from now until then, the success path looks for caller and gateway locks
        UPDATE kondge.pin_policy p SET locks_until = greatest(p.locks_until, v_row.locked_until);
        PERFORM kondge.pin_locked(p_scope, p_key, v_row.locked_until, p_tries, NULL, p_caller,
                                  p_gateway_id);
    END IF;
    RETURN true;
END;
$$;
