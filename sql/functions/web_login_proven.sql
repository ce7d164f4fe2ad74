-- The rest of a login, once the PIN is compared (p_right): the card
-- (p_card_id, NULL when the number is no card, or the caller number is
-- bound to none) and its number (p_number; for a caller number bound to
-- none, the caller number itself, so that it is counted and locked in
-- pin_guard as a number that is no card is), and the caller number for a
-- caller login (p_caller; counted and locked like a gateway's caller).
-- Not granted to anyone: web_login and web_login_caller call it. What it
-- counts and answers: web_login.sql.
CREATE OR REPLACE FUNCTION kondge.web_login_proven(
    p_card_id bigint, p_number text, p_caller text, p_right boolean, p_client text)
RETURNS TABLE (refusal text, refused_until timestamptz, token text)
LANGUAGE plpgsql SET search_path = kondge, public AS $$
DECLARE
    v_policy  kondge.pin_policy;
    v_card    record;
    v_lock    record;
    v_until   timestamptz;
    v_refusal text;
    v_token   text;
BEGIN
    IF p_client IS NULL OR p_client !~ '^[0-9A-Za-z.:_-]{1,64}$'
       OR p_caller !~ '^[0-9]{4,20}$' THEN
        RAISE EXCEPTION 'client: the address the request came from, not %; caller number: '
                        '4 to 20 digits or none, not %',
                        coalesce(quote_literal(left(p_client, 70)), 'none'),
                        coalesce(quote_literal(left(p_caller, 30)), 'none')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_policy FROM kondge.pin_policy;
    -- the client's lock, then (a caller login) the caller number's
    SELECT g.scope, g.locked_until INTO v_lock FROM kondge.pin_guard g
     WHERE g.locked_until > now()
       AND ((g.scope = 'web' AND g.key = p_client) OR (g.scope = 'caller' AND g.key = p_caller))
     ORDER BY g.scope = 'web' DESC LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT CASE v_lock.scope WHEN 'web' THEN 'client-locked'
                                              ELSE 'caller-locked' END,
                            v_lock.locked_until, NULL::text;
        RETURN;
    END IF;
    SELECT c.id, c.pin_failures, c.pin_locks, c.pin_locked_until INTO v_card
      FROM kondge.card c WHERE c.id = p_card_id;
    v_until := CASE WHEN v_card.id IS NOT NULL THEN v_card.pin_locked_until
                    ELSE (SELECT g.locked_until FROM kondge.pin_guard g
                           WHERE g.scope = 'card' AND g.key = p_number) END;
    IF v_until > now() THEN
        RETURN QUERY SELECT 'card-locked'::text, v_until, NULL::text;
        RETURN;
    END IF;
    IF v_card.id IS NULL OR NOT coalesce(p_right, false) THEN
        v_refusal := kondge.pin_failed(v_card.id, p_number, p_caller, NULL);
        IF v_policy.caller_tries > 0
           AND NOT kondge.pin_count(p_client, 'web', v_policy.caller_tries,
                                    v_policy.caller_window, p_caller, NULL) THEN
            v_refusal := coalesce(v_refusal, 'client-locked');
        END IF;
        RETURN QUERY SELECT coalesce(v_refusal, 'wrong-pin'),
                            CASE v_refusal
                                WHEN 'client-locked' THEN
                                    (SELECT g.locked_until FROM kondge.pin_guard g
                                      WHERE g.scope = 'web' AND g.key = p_client)
                                ELSE kondge.pin_lock_end(v_refusal, p_number, p_caller, NULL)
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
                                (SELECT c.pin_locked_until FROM kondge.card c
                                  WHERE c.id = v_card.id),
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
