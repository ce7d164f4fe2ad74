-- A card-number login that failed (wrong PIN, or no such card): count it
-- against the card number, the caller number and the gateway, and lock each
-- that reaches its limit (pin_policy, written from the KONDGE_PIN_* settings
-- at start). Called by radius_card only; every lock is an audit record.
--
--   card (p_card_id; its own row): wrong PINs in a row (the right PIN
--       forgives them, in radius_card). At card_tries the card is locked
--       for card_cooldown seconds, doubled for every earlier lock in a row;
--       card_cooldown 0: until `kondge cards unlock`. A number that is no
--       card (p_card_id NULL) is counted and locked the same in pin_guard,
--       so that a lock tells nobody which numbers are cards.
--   caller number, gateway (pin_count): failures within a window that
--       starts at the first one; at the limit the key is locked for one
--       window. A request without a caller number counts against the
--       gateway only.
-- 0 tries: that key is not counted.
--
-- Each count is one atomic statement: failures that arrive at once each
-- count (each waits for the row lock of the one before). They lock the rows
-- in one order (card, caller, gateway), so they never deadlock.
--
-- Returns NULL, or the lock a request found when it came to be counted:
-- 'card-locked', 'caller-locked' or 'gateway-locked'. Such a request was
-- let through by radius_card's look at the locks just before another
-- request's lock was committed; it is not counted (from that key on) and is
-- answered as locked, so a lock lets no more guesses through than its limit.
CREATE OR REPLACE FUNCTION kondge.pin_failed(
    p_card_id bigint, p_number text, p_caller text, p_gateway_id integer)
RETURNS text
LANGUAGE plpgsql SET search_path = kondge, public AS $$
DECLARE
    v_policy   kondge.pin_policy;
    v_failures integer;
    v_locks    integer;
    v_until    timestamptz;
BEGIN
    SELECT * INTO v_policy FROM kondge.pin_policy;
    IF v_policy.card_tries > 0 AND (p_card_id IS NOT NULL
                                    OR coalesce(p_number ~ '^[0-9]{1,20}$', false)) THEN
        IF p_card_id IS NOT NULL THEN
            UPDATE kondge.card c SET pin_failures = c.pin_failures + 1
             WHERE c.id = p_card_id AND NOT coalesce(c.pin_locked_until > now(), false)
            RETURNING c.pin_failures, c.pin_locks INTO v_failures, v_locks;
        ELSE
            INSERT INTO kondge.pin_guard AS g (scope, key, failures, window_start, last_failure)
            VALUES ('card', p_number, 1, now(), now())
            ON CONFLICT (scope, key) DO UPDATE SET failures = g.failures + 1,
                                                   last_failure = now()
             WHERE NOT coalesce(g.locked_until > now(), false)
            RETURNING g.failures, g.locks INTO v_failures, v_locks;
        END IF;
        IF v_failures IS NULL THEN              -- locked meanwhile: nothing counted
            RETURN 'card-locked';
        END IF;
        IF v_failures >= v_policy.card_tries THEN
            v_until := CASE WHEN v_policy.card_cooldown = 0 THEN 'infinity'
                            ELSE now() + make_interval(secs => v_policy.card_cooldown
                                                               * power(2, least(v_locks, 20)))
                       END;
            IF p_card_id IS NOT NULL THEN
                UPDATE kondge.card c
                   SET pin_failures = 0, pin_locks = c.pin_locks + 1, pin_locked_until = v_until
                 WHERE c.id = p_card_id;
            ELSE
                UPDATE kondge.pin_guard g
                   SET failures = 0, locks = g.locks + 1, window_start = now(),
                       locked_until = v_until
                 WHERE g.scope = 'card' AND g.key = p_number;
            END IF;
            PERFORM kondge.pin_locked('card', p_number, v_until, v_policy.card_tries,
                                      v_locks + 1, p_caller, p_gateway_id);
        END IF;
    END IF;
    IF v_policy.caller_tries > 0 AND coalesce(p_caller ~ '^[0-9]{1,32}$', false) THEN
        IF NOT kondge.pin_count(p_caller, 'caller', v_policy.caller_tries,
                                v_policy.caller_window, p_caller, p_gateway_id) THEN
            RETURN 'caller-locked';
        END IF;
    END IF;
    IF v_policy.gateway_tries > 0 AND p_gateway_id IS NOT NULL THEN
        IF NOT kondge.pin_count(p_gateway_id::text, 'gateway', v_policy.gateway_tries,
                                v_policy.gateway_window, p_caller, p_gateway_id) THEN
            RETURN 'gateway-locked';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
