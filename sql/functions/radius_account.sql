-- One accounting record (kondge_billing/calls/cdrs.py: account): which leg of
-- which call it is, and what to do with it.
--
-- Which leg, and whether it is the billed one, from the best evidence:
--   1. its h323-call-origin, or that of an earlier record of the same
--      Acct-Session-Id: billed when it is the gateway's billed leg;
--   2. its h323-call-type: the VoIP leg is the billed one;
--   3. the number it called: one of our access numbers (or the one stage 1
--      kept for the call) is the caller's leg into the IVR, not billed;
--   4. otherwise the leg that claims the call's hold is the billed one
--      (flagged leg-guessed): one leg is billed per call, never two.
-- Which call: the billed leg's records claim the call's hold (the
-- authorisation) with their Acct-Session-Id: first the hold this session
-- claimed, else the oldest unclaimed hold of the call identity, else (a
-- gateway that sent no h323-conf-id in its Access-Request, or none in its
-- accounting) the oldest unclaimed hold on the gateway for the same card
-- and destination. The hold, not the record, decides the card, destination
-- and price; what the record says that disagrees is flagged.
-- Repeats: a Stop identical to the stored one (stop_digest), or a Start of
-- a leg already started, changes nothing. A Stop that differs from a
-- stored one is either the real Stop of a call the sweep closed
-- ('correct'), or, with an unclaimed hold made after it, a new call under
-- reused ids.
--
-- Outcomes: 'recorded' (stored), 'duplicate' (nothing changed), and for a
-- billed Stop, nothing stored yet: 'price' (authorised: the hold's
-- rating), 'unauthorised' (no hold: the named card's rating, if any) or
-- 'correct' (the CDR of a swept call: its rating). A rating is its ids
-- (version, plan, destination, prefix) and the caller it was chosen for:
-- the caller keeps the ratings by their ids (kondge_billing/store/
-- prices.py), prices the call and stores it with radius_settle or
-- radius_correct.
CREATE OR REPLACE FUNCTION kondge.radius_account(
    p_status text, p_gateway_id integer, p_billed_leg text, p_call_id text,
    p_has_conf boolean, p_origin text, p_call_type text, p_acct_session_id text,
    p_user_name text, p_card_number text, p_caller_number text, p_caller text,
    p_called text, p_setup timestamptz, p_connect timestamptz, p_disconnect timestamptz,
    p_session_time integer, p_cause text, p_flags text[], p_digest text
) RETURNS TABLE (
    outcome text, call_key text, leg text, flags text[], hold_id bigint, card_id bigint,
    card_number text, currency char(3), destination text, access_number text,
    category text, granted_seconds integer, hold_amount numeric,
    authorised_at timestamptz, rating_version_id integer, rating_plan_id integer,
    rating_destination_id integer, rating_prefix text, rating_caller text,
    start_received_at timestamptz, start_connect timestamptz, cdr_id bigint,
    cdr_charge numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
#variable_conflict use_column
DECLARE
    v_flags  text[] := coalesce(p_flags, '{}');
    v_sess   text := coalesce(p_acct_session_id, '');
    v_leg    text := p_origin;
    v_billed boolean;
    v_prev   kondge.call_leg%ROWTYPE;
    v_hold   kondge.reservation%ROWTYPE;
    v_key    text;
    v_cdr    kondge.cdr%ROWTYPE;
    v_card   record;
    v_login  text;
    v_live   boolean := false;  -- the claim of a Start made its hold live too
    v_number text;              -- the number of the hold's card
    v_version integer;          -- the price of a call nobody authorised: its ids
    v_plan    integer;
    v_dest    integer;
    v_prefix  text;
BEGIN
    IF p_status NOT IN ('start', 'interim', 'stop') THEN
        RAISE EXCEPTION 'radius_account: unknown status %', p_status
              USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 1. which leg, and is it the billed one
    IF v_leg IS NULL THEN
        SELECT l.leg INTO v_leg FROM kondge.call_leg l
         WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
           AND l.acct_session_id = v_sess AND l.leg IN ('answer', 'originate')
         ORDER BY l.id DESC LIMIT 1;
        IF v_leg IS NOT NULL THEN
            v_flags := v_flags || ARRAY['call-origin-from-earlier-record'];
        END IF;
    END IF;
    IF v_leg IS NOT NULL THEN
        v_billed := v_leg = p_billed_leg;
    ELSIF lower(p_call_type) IN ('voip', 'telephony') THEN
        v_billed := lower(p_call_type) = 'voip';
        v_flags := v_flags || ARRAY['leg-from-call-type'];
    ELSIF p_called IS NOT NULL THEN
        SELECT l.access_number INTO v_login FROM kondge.call_login l
         WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id;
        IF p_called = v_login
           OR EXISTS (SELECT 1 FROM kondge.access_number a WHERE a.number = p_called) THEN
            v_billed := false;
            v_flags := v_flags || ARRAY['leg-from-called-number'];
        END IF;
    END IF;
    IF v_leg IS NULL AND v_billed IS NOT NULL THEN
        v_leg := CASE WHEN NOT p_has_conf THEN 'session'
                      WHEN v_billed THEN p_billed_leg
                      WHEN p_billed_leg = 'originate' THEN 'answer' ELSE 'originate' END;
    END IF;

    -- 2. a repeat, or a later record of a leg already stored: the leg's
    -- latest record, or a Stop's any record with the same digest (one read:
    -- that record first)
    SELECT * INTO v_prev FROM kondge.call_leg l
     WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
       AND l.acct_session_id = v_sess AND (v_leg IS NULL OR l.leg = v_leg)
     ORDER BY coalesce(p_status = 'stop' AND l.stop_digest = p_digest, false) DESC, l.id DESC
     LIMIT 1;
    IF p_status = 'stop' AND v_prev.stop_digest = p_digest THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::text, v_leg, v_flags,
            NULL::bigint, NULL::bigint, NULL::text, NULL::char(3), NULL::text, NULL::text,
            NULL::text, NULL::integer, NULL::numeric, NULL::timestamptz, NULL::integer,
            NULL::integer, NULL::integer, NULL::text, NULL::text,
            NULL::timestamptz, NULL::timestamptz, NULL::bigint, NULL::numeric;
        RETURN;
    END IF;
    IF v_prev.id IS NOT NULL THEN
        v_leg := coalesce(v_leg, v_prev.leg);
        -- the real Stop of a call the sweep closed (its Stop was late, not lost):
        -- the sweep removed the call's hold when it wrote the CDR, so while the
        -- hold is there (the call's hold, read here once for step 3) there is
        -- no such CDR to look for
        IF p_status = 'stop' AND v_billed IS NOT FALSE AND NOT 'stop-missing' = ANY (v_flags)
           AND v_prev.stop_digest IS DISTINCT FROM p_digest THEN
            SELECT * INTO v_hold FROM kondge.reservation r
             WHERE r.gateway_id = p_gateway_id AND r.call_key = v_prev.call_key;
            IF v_hold.id IS NULL THEN
                SELECT * INTO v_cdr FROM kondge.cdr d
                 WHERE d.gateway_id = p_gateway_id AND d.call_key = v_prev.call_key
                   AND 'stop-missing' = ANY (d.flags) AND NOT 'corrected' = ANY (d.flags);
            END IF;
            IF v_cdr.id IS NOT NULL THEN
                RETURN QUERY SELECT 'correct'::text, v_cdr.call_key, v_leg, v_flags,
                    NULL::bigint, v_cdr.card_id, v_cdr.card_number, v_cdr.currency,
                    v_cdr.destination, v_cdr.access_number, v_cdr.category,
                    v_cdr.granted_seconds, NULL::numeric, v_cdr.authorised_at,
                    v_cdr.tariff_version_id, v_cdr.plan_id, v_cdr.destination_id,
                    v_cdr.rate_prefix, v_cdr.caller,
                    v_prev.start_received_at, v_prev.connect_time, v_cdr.id, v_cdr.charge;
                RETURN;
            END IF;
        END IF;
        IF v_prev.stop_received_at IS NOT NULL THEN
            IF p_status = 'stop' AND v_prev.stop_digest IS NOT DISTINCT FROM p_digest THEN
                RETURN QUERY SELECT 'duplicate'::text, v_prev.call_key, v_leg, v_flags,
                    NULL::bigint, NULL::bigint, NULL::text, NULL::char(3), NULL::text,
                    NULL::text, NULL::text, NULL::integer, NULL::numeric, NULL::timestamptz,
                    NULL::integer, NULL::integer, NULL::integer, NULL::text, NULL::text,
                    NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                    NULL::numeric;
                RETURN;
            END IF;
            -- reused ids: a new authorisation of this call id since that Stop
            IF NOT EXISTS (SELECT 1 FROM kondge.reservation r
                            WHERE r.gateway_id = p_gateway_id AND r.call_id = p_call_id
                              AND r.acct_session_id IS NULL
                              AND r.created_at > v_prev.stop_received_at) THEN
                IF p_status = 'start' AND v_prev.start_received_at IS NULL THEN
                    -- the Start of a call whose Stop came first: noted, nothing goes live
                    UPDATE kondge.call_leg SET start_received_at = now(),
                           setup_time = coalesce(setup_time, p_setup)
                     WHERE id = v_prev.id;
                    RETURN QUERY SELECT 'recorded'::text, v_prev.call_key, v_leg, v_flags,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::char(3), NULL::text,
                        NULL::text, NULL::text, NULL::integer, NULL::numeric,
                        NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer,
                        NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz,
                        NULL::bigint, NULL::numeric;
                    RETURN;
                END IF;
                RETURN QUERY SELECT 'duplicate'::text, v_prev.call_key, v_leg,
                    v_flags || ARRAY['differs-from-stored-record'], NULL::bigint,
                    NULL::bigint, NULL::text, NULL::char(3), NULL::text, NULL::text,
                    NULL::text, NULL::integer, NULL::numeric, NULL::timestamptz, NULL::integer,
                    NULL::integer, NULL::integer, NULL::text, NULL::text,
                    NULL::timestamptz, NULL::timestamptz, NULL::bigint, NULL::numeric;
                RETURN;
            END IF;
            v_prev := NULL;          -- a new call under the same ids
            v_hold := NULL;          -- (and the old call's hold is none of its business)
        ELSIF p_status = 'start' AND v_prev.start_received_at IS NOT NULL THEN
            RETURN QUERY SELECT 'duplicate'::text, v_prev.call_key, v_leg, v_flags,
                NULL::bigint, NULL::bigint, NULL::text, NULL::char(3), NULL::text, NULL::text,
                NULL::text, NULL::integer, NULL::numeric, NULL::timestamptz, NULL::integer,
                NULL::integer, NULL::integer, NULL::text, NULL::text,
                NULL::timestamptz, NULL::timestamptz, NULL::bigint, NULL::numeric;
            RETURN;
        END IF;
    END IF;

    -- 3. the call's hold (its authorisation)
    IF v_billed IS NOT FALSE THEN
        IF v_prev.id IS NOT NULL AND v_hold.id IS NULL THEN
            SELECT * INTO v_hold FROM kondge.reservation r
             WHERE r.gateway_id = p_gateway_id AND r.call_key = v_prev.call_key;
        END IF;
        IF v_hold.id IS NULL THEN
            SELECT * INTO v_hold FROM kondge.reservation r
             WHERE r.gateway_id = p_gateway_id AND r.call_id = p_call_id
               AND r.acct_session_id = v_sess
             ORDER BY r.id LIMIT 1;
        END IF;
        IF v_hold.id IS NULL AND v_prev.id IS NULL THEN
            -- claim the oldest unclaimed hold of the call; a claim lost to
            -- another record at the same moment finds nothing and tries the next.
            -- A Start's claim makes the hold live in the same stroke (as below:
            -- one row version, not two)
            FOR i IN 1 .. 3 LOOP
                UPDATE kondge.reservation r SET acct_session_id = v_sess,
                       state = CASE WHEN p_status = 'start' THEN 'live' ELSE r.state END,
                       started_at = CASE WHEN p_status = 'start' THEN now()
                                         ELSE r.started_at END,
                       start_received_at = CASE WHEN p_status = 'start' THEN now()
                                                ELSE r.start_received_at END,
                       flags = CASE WHEN p_status = 'start'
                                     AND (r.state = 'lapsed' OR r.hold_expires_at < now())
                                    THEN r.flags || ARRAY['late-start'] ELSE r.flags END
                 WHERE r.id = (SELECT h.id FROM kondge.reservation h
                                WHERE h.gateway_id = p_gateway_id AND h.call_id = p_call_id
                                  AND h.acct_session_id IS NULL
                                ORDER BY h.id LIMIT 1)
                   AND r.acct_session_id IS NULL
                RETURNING * INTO v_hold;
                v_live := v_hold.id IS NOT NULL AND p_status = 'start';
                -- two tests, not one OR: a condition whose first half the
                -- planner can fold (a constant per call) is planned anew at
                -- every call (the custom plan looks cheaper than the generic)
                EXIT WHEN v_hold.id IS NOT NULL;
                EXIT WHEN NOT EXISTS (SELECT 1 FROM kondge.reservation h
                                       WHERE h.gateway_id = p_gateway_id
                                         AND h.call_id = p_call_id
                                         AND h.acct_session_id IS NULL);
            END LOOP;
        END IF;
        IF v_hold.id IS NULL AND v_prev.id IS NULL THEN
            -- a hold made without a call identity ('auth:…'), or a record that
            -- carries none (a gateway that sends no h323 attributes in its
            -- accounting): by card and destination
            UPDATE kondge.reservation r SET acct_session_id = v_sess, call_id = p_call_id
             WHERE r.id = (
                   SELECT h.id FROM kondge.reservation h JOIN kondge.card c ON c.id = h.card_id
                    WHERE h.gateway_id = p_gateway_id
                      AND (h.call_id LIKE 'auth:%' OR NOT p_has_conf)
                      AND h.acct_session_id IS NULL
                      AND (p_called IS NULL OR h.destination = p_called)
                      AND (c.number = p_card_number
                           OR h.card_id = (SELECT b.card_id FROM kondge.caller b
                                            WHERE b.number = p_caller_number)
                           OR (p_card_number IS NULL AND p_caller_number IS NULL
                               AND h.caller = p_caller))
                    ORDER BY h.id LIMIT 1)
               AND r.acct_session_id IS NULL
            RETURNING * INTO v_hold;
        END IF;
        IF v_hold.id IS NOT NULL AND v_billed IS NULL THEN
            v_billed := true;
            IF p_has_conf THEN
                v_leg := p_billed_leg;
                v_flags := v_flags || ARRAY['leg-guessed'];
            ELSE
                v_leg := 'session';     -- a session of its own that claims the hold
            END IF;
        END IF;
    END IF;
    IF v_leg IS NULL THEN
        v_leg := 'unknown';
        v_flags := v_flags || ARRAY['leg-unknown'];
    END IF;
    IF v_billed IS NULL AND NOT p_has_conf THEN
        v_billed := true;               -- a session of its own, with no hold: unauthorised
    END IF;

    -- 4. the call's key
    IF v_hold.id IS NOT NULL THEN
        v_key := v_hold.call_key;
        IF p_called IS NOT NULL AND p_called IS DISTINCT FROM v_hold.destination THEN
            v_flags := v_flags || ARRAY['destination-differs'];
        END IF;
        -- the hold's card's number: compared with the record's, and the answer's
        IF p_card_number IS NOT NULL OR (p_status = 'stop' AND v_billed) THEN
            v_number := (SELECT c.number FROM kondge.card c WHERE c.id = v_hold.card_id);
        END IF;
        IF p_card_number IS NOT NULL AND v_number IS DISTINCT FROM p_card_number THEN
            v_flags := v_flags || ARRAY['card-differs'];
        END IF;
    ELSIF v_prev.id IS NOT NULL THEN
        v_key := v_prev.call_key;
        IF v_billed THEN
            v_flags := v_flags || ARRAY['no-authorisation'];
        END IF;
    ELSIF v_billed THEN
        v_key := p_call_id;
        IF EXISTS (SELECT 1 FROM kondge.cdr d
                    WHERE d.gateway_id = p_gateway_id AND d.call_key = v_key)
           OR EXISTS (SELECT 1 FROM kondge.reservation r
                       WHERE r.gateway_id = p_gateway_id AND r.call_key = v_key) THEN
            v_key := p_call_id || '#u' || left(md5(v_sess || coalesce(p_digest, '')), 12);
        END IF;
        v_flags := v_flags || ARRAY['no-authorisation'];
    ELSE
        v_key := p_call_id;
    END IF;

    -- 5. store (all but a billed Stop)
    IF p_status = 'start' THEN
        INSERT INTO kondge.call_leg AS l
               (gateway_id, call_id, call_key, leg, acct_session_id, user_name, caller,
                called, setup_time, connect_time, start_received_at, flags)
        VALUES (p_gateway_id, p_call_id, v_key, v_leg, v_sess, p_user_name, p_caller,
                p_called, p_setup, p_connect, now(), v_flags)
        ON CONFLICT (gateway_id, call_id, leg, acct_session_id, call_key) DO UPDATE
           SET start_received_at = now(),
               setup_time = coalesce(l.setup_time, excluded.setup_time),
               connect_time = coalesce(l.connect_time, excluded.connect_time),
               flags = l.flags || excluded.flags
         WHERE l.start_received_at IS NULL;
        IF v_billed AND v_hold.id IS NOT NULL AND NOT v_live THEN
            UPDATE kondge.reservation
               SET state = 'live', started_at = now(), start_received_at = now(),
                   flags = CASE WHEN v_hold.state = 'lapsed' OR v_hold.hold_expires_at < now()
                                THEN flags || ARRAY['late-start'] ELSE flags END
             WHERE id = v_hold.id;
        END IF;
        RETURN QUERY SELECT 'recorded'::text, v_key, v_leg, v_flags, v_hold.id,
            v_hold.card_id, NULL::text, NULL::char(3), NULL::text, NULL::text, NULL::text,
            NULL::integer, NULL::numeric, NULL::timestamptz, NULL::integer, NULL::integer,
            NULL::integer, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::bigint, NULL::numeric;
        RETURN;
    END IF;

    IF p_status = 'interim' THEN
        INSERT INTO kondge.call_leg AS l
               (gateway_id, call_id, call_key, leg, acct_session_id, user_name, caller,
                called, setup_time, connect_time, session_time, flags)
        VALUES (p_gateway_id, p_call_id, v_key, v_leg, v_sess, p_user_name, p_caller,
                p_called, p_setup, p_connect, p_session_time, v_flags)
        ON CONFLICT (gateway_id, call_id, leg, acct_session_id, call_key) DO UPDATE
           SET session_time = greatest(l.session_time, excluded.session_time),
               connect_time = coalesce(l.connect_time, excluded.connect_time)
         WHERE l.stop_received_at IS NULL;
        IF v_billed AND v_hold.id IS NOT NULL THEN
            UPDATE kondge.reservation
               SET interim_seconds = greatest(interim_seconds, p_session_time),
                   interim_at = now(), state = 'live',
                   started_at = coalesce(started_at, now())
             WHERE id = v_hold.id;
        END IF;
        RETURN QUERY SELECT 'recorded'::text, v_key, v_leg, v_flags, v_hold.id,
            v_hold.card_id, NULL::text, NULL::char(3), NULL::text, NULL::text, NULL::text,
            NULL::integer, NULL::numeric, NULL::timestamptz, NULL::integer, NULL::integer,
            NULL::integer, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::bigint, NULL::numeric;
        RETURN;
    END IF;

    IF NOT v_billed THEN
        INSERT INTO kondge.call_leg AS l
               (gateway_id, call_id, call_key, leg, acct_session_id, user_name, caller,
                called, setup_time, connect_time, disconnect_time, session_time,
                disconnect_cause, stop_received_at, stop_digest, flags)
        VALUES (p_gateway_id, p_call_id, v_key, v_leg, v_sess, p_user_name, p_caller,
                p_called, p_setup, p_connect, p_disconnect, p_session_time, p_cause, now(),
                p_digest, v_flags)
        ON CONFLICT (gateway_id, call_id, leg, acct_session_id, call_key) DO UPDATE
           SET stop_received_at = now(), stop_digest = excluded.stop_digest,
               setup_time = coalesce(l.setup_time, excluded.setup_time),
               connect_time = coalesce(excluded.connect_time, l.connect_time),
               disconnect_time = excluded.disconnect_time,
               session_time = excluded.session_time,
               disconnect_cause = excluded.disconnect_cause,
               flags = l.flags || excluded.flags
         WHERE l.stop_received_at IS NULL;
        RETURN QUERY SELECT CASE WHEN FOUND THEN 'recorded' ELSE 'duplicate' END, v_key,
            v_leg, v_flags, NULL::bigint, NULL::bigint, NULL::text, NULL::char(3),
            NULL::text, NULL::text, NULL::text, NULL::integer, NULL::numeric,
            NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer, NULL::text,
            NULL::text, NULL::timestamptz, NULL::timestamptz,
            NULL::bigint, NULL::numeric;
        RETURN;
    END IF;

    -- 6. a billed Stop: what the caller needs to price it
    IF v_hold.id IS NOT NULL THEN
        RETURN QUERY SELECT 'price'::text, v_key, v_leg, v_flags || v_hold.flags, v_hold.id,
            v_hold.card_id, v_number,
            v_hold.currency, v_hold.destination, v_hold.access_number, v_hold.category,
            v_hold.granted_seconds, v_hold.amount, v_hold.created_at,
            v_hold.tariff_version_id, v_hold.plan_id, v_hold.destination_id,
            v_hold.rate_prefix, v_hold.caller,
            coalesce(v_prev.start_received_at, v_hold.start_received_at),
            v_prev.connect_time, NULL::bigint, NULL::numeric;
        RETURN;
    END IF;
    SELECT c.id, c.number, c.currency, c.category, coalesce(c.tariff_id, cat.tariff_id) AS tariff_id
      INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.number = p_card_number
        OR c.id = (SELECT b.card_id FROM kondge.caller b WHERE b.number = p_caller_number)
     ORDER BY c.number = p_card_number DESC LIMIT 1;
    SELECT l.access_number INTO v_login FROM kondge.call_login l
     WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id;
    IF v_card.id IS NOT NULL THEN
        SELECT c.version_id, c.plan_id, c.destination_id, c.prefix
          INTO v_version, v_plan, v_dest, v_prefix
          FROM kondge.rating_choice(v_card.category, p_called, p_caller, v_login, p_gateway_id,
                                    coalesce(p_connect, now()), v_card.tariff_id) c;
    END IF;
    RETURN QUERY SELECT 'unauthorised'::text, v_key, v_leg, v_flags, NULL::bigint, v_card.id,
        v_card.number, v_card.currency, p_called, v_login, v_card.category, NULL::integer,
        NULL::numeric, NULL::timestamptz, v_version, v_plan, v_dest, v_prefix, p_caller,
        v_prev.start_received_at, v_prev.connect_time, NULL::bigint, NULL::numeric;
END;
$$;
