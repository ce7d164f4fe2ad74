-- A card holder logs in to the web portal (kondge_billing/portal.py: login)
-- with a card number and the keyed hash of the PIN given (made by the web
-- process, as the call path makes it: the hash never leaves the database).
--
-- The PIN is counted by the call path's own rules and counters
-- (pin_failed.sql): a card number's wrong PINs in a row, and its lock, are
-- the same whether the guesses come from a gateway or from the web, so
-- there is one lockout. The web client's address (p_client) is counted
-- like a caller number (KONDGE_PIN_CALLER_TRIES within
-- KONDGE_PIN_CALLER_WINDOW; scope 'web' of pin_guard), which stops one
-- client spraying card numbers. Locks are looked at before the PIN is
-- compared, and a locked key is not counted.
--
-- Returns one row: `refusal` NULL and a new session `token`, or a refusal
-- and nothing else: 'wrong-pin' (a wrong PIN or a number that is no card:
-- one answer, so the portal tells nobody which numbers are cards),
-- 'card-locked' or 'client-locked' with `refused_until`.
-- The token is 64 hex digits from two random UUIDs (244 random bits, from
-- PostgreSQL's strong random source); the session keeps its SHA-256 only.
CREATE OR REPLACE FUNCTION kondge.web_login(p_number text, p_pin_hash text, p_client text)
RETURNS TABLE (refusal text, refused_until timestamptz, token text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
DECLARE
    v_policy  kondge.pin_policy;
    v_card    record;
    v_until   timestamptz;
    v_refusal text;
    v_token   text;
BEGIN
    IF p_client IS NULL OR p_client !~ '^[0-9A-Za-z.:_-]{1,64}$' THEN
        RAISE EXCEPTION 'client: the address the request came from, not %',
                        coalesce(quote_literal(left(p_client, 70)), 'none')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_policy FROM kondge.pin_policy;
    SELECT g.locked_until INTO v_until FROM kondge.pin_guard g
     WHERE g.scope = 'web' AND g.key = p_client AND g.locked_until > now();
    IF v_until IS NOT NULL THEN
        RETURN QUERY SELECT 'client-locked'::text, v_until, NULL::text;
        RETURN;
    END IF;
    SELECT c.id, c.pin_hash, c.pin_failures, c.pin_locks, c.pin_locked_until INTO v_card
      FROM kondge.card c WHERE c.number = p_number;
    v_until := CASE WHEN v_card.id IS NOT NULL THEN v_card.pin_locked_until
                    ELSE (SELECT g.locked_until FROM kondge.pin_guard g
                           WHERE g.scope = 'card' AND g.key = p_number) END;
    IF v_until > now() THEN
        RETURN QUERY SELECT 'card-locked'::text, v_until, NULL::text;
        RETURN;
    END IF;
    IF v_card.id IS NULL OR v_card.pin_hash IS DISTINCT FROM p_pin_hash THEN
        v_refusal := kondge.pin_failed(v_card.id, p_number, NULL, NULL);
        IF v_policy.caller_tries > 0
           AND NOT kondge.pin_count(p_client, 'web', v_policy.caller_tries,
                                    v_policy.caller_window, NULL, NULL) THEN
            v_refusal := coalesce(v_refusal, 'client-locked');
        END IF;
        RETURN QUERY SELECT coalesce(v_refusal, 'wrong-pin'),
                            CASE v_refusal
                                WHEN 'card-locked' THEN
                                    kondge.pin_lock_end('card-locked', p_number, NULL, NULL)
                                WHEN 'client-locked' THEN
                                    (SELECT g.locked_until FROM kondge.pin_guard g
                                      WHERE g.scope = 'web' AND g.key = p_client)
                            END,
                            NULL::text;
        RETURN;
    END IF;
    IF v_card.pin_failures > 0 OR v_card.pin_locks > 0 THEN
        -- the right PIN forgives the wrong ones, unless a lock came meanwhile
        UPDATE kondge.card c SET pin_failures = 0, pin_locks = 0, pin_locked_until = NULL
         WHERE c.id = v_card.id AND NOT coalesce(c.pin_locked_until > now(), false);
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'card-locked'::text,
                                kondge.pin_lock_end('card-locked', p_number, NULL, NULL),
                                NULL::text;
            RETURN;
        END IF;
    END IF;
    DELETE FROM kondge.web_session s WHERE s.expires_at <= now();
    v_token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    INSERT INTO kondge.web_session (token_hash, card_id, client, expires_at)
    VALUES (encode(sha256(convert_to(v_token, 'UTF8')), 'hex'), v_card.id, p_client,
            now() + interval '15 minutes');
    RETURN QUERY SELECT NULL::text, NULL::timestamptz, v_token;
END;
$$;
