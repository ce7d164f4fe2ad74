-- A card-number login that failed (wrong PIN, or no such card): count it
-- against the card number, the caller number and the gateway, and lock each
-- that reaches its limit (pin_policy, written from the KONDGE_PIN_* settings
-- at start). Called by radius_card only; every lock is an audit record.
--
--   card number: wrong PINs in a row (the right PIN forgives them, in
--       radius_card). At card_tries the number is locked for card_cooldown
--       seconds, doubled for every earlier lock in a row; card_cooldown 0:
--       until `kondge cards unlock`. A number that is no card is counted
--       and locked the same, so that a lock tells nobody which numbers are
--       cards.
--   caller number, gateway: failures within a window that starts at the
--       first one; at the limit the key is locked for one window. A request
--       without a caller number counts against the gateway only.
-- 0 tries: that key is not counted.
--
-- The counting statements are atomic upserts: failures that arrive at once
-- each count (each waits for the row lock of the one before). They lock the
-- rows in one order (card, caller, gateway), so they never deadlock.
--
-- Returns NULL, or the lock a request found when it came to be counted:
-- 'card-locked', 'caller-locked' or 'gateway-locked'. Such a request was
-- let through by radius_card's look at the locks just before another
-- request's lock was committed; it is not counted (from that key on) and is
-- answered as locked, so a lock lets no more guesses through than its limit.
CREATE OR REPLACE FUNCTION kondge.pin_failed(p_number text, p_caller text, p_gateway_id integer)
RETURNS text
LANGUAGE plpgsql SET search_path = kondge, public AS $$
DECLARE
    v_policy kondge.pin_policy;
    v_row    kondge.pin_guard;
BEGIN
    SELECT * INTO v_policy FROM kondge.pin_policy;
    IF v_policy.card_tries > 0 AND coalesce(p_number ~ '^[0-9]{1,20}$', false) THEN
        INSERT INTO kondge.pin_guard AS g (scope, key, failures, window_start, last_failure)
        VALUES ('card', p_number, 1, now(), now())
        ON CONFLICT (scope, key) DO UPDATE SET failures = g.failures + 1, last_failure = now()
         WHERE NOT coalesce(g.locked_until > now(), false)
        RETURNING * INTO v_row;
        IF NOT FOUND THEN
            RETURN 'card-locked';
        END IF;
        IF v_row.failures >= v_policy.card_tries THEN
            UPDATE kondge.pin_guard g
               SET failures = 0, locks = g.locks + 1, window_start = now(),
                   locked_until = CASE WHEN v_policy.card_cooldown = 0 THEN 'infinity'
                       ELSE now() + make_interval(
                           secs => v_policy.card_cooldown * power(2, least(g.locks, 20))) END
             WHERE g.scope = 'card' AND g.key = p_number
            RETURNING * INTO v_row;
            PERFORM kondge.pin_locked(v_row, v_policy.card_tries, p_number, p_caller,
                                      p_gateway_id);
        END IF;
    END IF;
    IF v_policy.caller_tries > 0 AND coalesce(p_caller ~ '^[0-9]{1,32}$', false) THEN
        IF NOT kondge.pin_count(p_caller, 'caller', v_policy.caller_tries,
                                v_policy.caller_window, p_number, p_caller, p_gateway_id) THEN
            RETURN 'caller-locked';
        END IF;
    END IF;
    IF v_policy.gateway_tries > 0 AND p_gateway_id IS NOT NULL THEN
        IF NOT kondge.pin_count(p_gateway_id::text, 'gateway', v_policy.gateway_tries,
                                v_policy.gateway_window, p_number, p_caller, p_gateway_id) THEN
            RETURN 'gateway-locked';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
