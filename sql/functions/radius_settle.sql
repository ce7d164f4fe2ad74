-- A billed Stop, priced (kondge_billing/calls/cdrs.py: settle): the leg, the CDR
-- and the charge, in one transaction. The call's hold is released; the
-- charge is the cost, but never more than the card can pay without taking
-- what its other calls hold (a prepaid card never goes below zero, a
-- postpaid one never below minus its credit limit): the rest is recorded
-- as uncollected and the CDR flagged 'overrun'. No charge at all when
-- p_charge is false (a call nobody authorised, by default). A repeat finds
-- its leg already stopped and changes nothing. The card's first answered
-- call starts its validity clock (first_used_at; the expiry of an
-- after-first-use card).
--
-- Only what a call could do: a hold pays for the call it authorised, on its
-- card (p_hold_id must be the hold of this call key and gateway, and
-- p_card_id its card); a call with no hold is charged only where the
-- operator chose so (kondge.call_policy, KONDGE_UNAUTHORISED_CALLS=charge).
-- No cost or duration below zero: the call path never credits a card.
--
-- Two records of the billed leg served at once by two processes (the same
-- call's Stop under two Acct-Session-Ids, say) both find the hold; the
-- first to settle bills the call, the other finds its hold gone and the
-- call's CDR there: it is kept on its leg, flagged, and charges nothing
-- (radius_settle_billed), never parked.
CREATE OR REPLACE FUNCTION kondge.radius_settle(
    p_gateway_id integer, p_call_key text, p_call_id text, p_leg text,
    p_acct_session_id text, p_hold_id bigint, p_card_id bigint, p_charge boolean,
    p_user_name text, p_caller text, p_called text, p_setup timestamptz,
    p_connect timestamptz, p_disconnect timestamptz, p_session_time integer,
    p_duration integer, p_cause text, p_flags text[], p_digest text,
    p_destination text, p_access_number text, p_category text, p_version_id integer,
    p_plan_id integer, p_destination_id integer, p_rate_prefix text, p_price numeric,
    p_cost numeric, p_currency text, p_granted integer, p_authorised_at timestamptz
) RETURNS TABLE (outcome text, charge numeric, balance numeric, cdr_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
#variable_conflict use_column
DECLARE
    v_flags  text[] := coalesce(p_flags, '{}');
    v_cost   numeric := coalesce(p_cost, 0);
    v_card   record;
    v_holds  record;
    v_room   numeric;
    v_charge numeric := 0;
    v_leg_id bigint;
    v_cdr_id bigint;
    v_after  numeric;
    v_first  boolean;           -- the card's first answered call
    v_expiry timestamptz;       -- and the expiry it starts (an after-first-use card)
BEGIN
    IF v_cost < 0 OR coalesce(p_duration, 0) < 0 OR p_price < 0 THEN
        RAISE EXCEPTION 'radius_settle: cost %, duration % and price % must not be negative',
                        p_cost, p_duration, p_price USING ERRCODE = 'check_violation';
    END IF;
    -- nested, not one AND: the policy's query alone is planned once (with
    -- the parameters beside it the planner folds them and plans it anew at
    -- every call)
    IF p_charge AND p_hold_id IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM kondge.call_policy WHERE unauthorised_calls = 'charge') THEN
            RAISE EXCEPTION 'radius_settle: call % of gateway % has no hold: a call nobody '
                            'authorised is charged only with KONDGE_UNAUTHORISED_CALLS=charge',
                            p_call_key, p_gateway_id USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    -- the card that pays (a call nobody authorised, not charged, touches no card)
    SELECT c.id, c.balance, c.currency, c.first_used_at, cat.billing, cat.credit_limit,
           cat.validity, cat.valid_days INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.id = p_card_id AND p_charge FOR UPDATE OF c;

    INSERT INTO kondge.call_leg AS l
           (gateway_id, call_id, call_key, leg, acct_session_id, user_name, caller, called,
            setup_time, connect_time, disconnect_time, session_time, disconnect_cause,
            stop_received_at, stop_digest, flags)
    VALUES (p_gateway_id, p_call_id, p_call_key, p_leg, coalesce(p_acct_session_id, ''),
            p_user_name, p_caller, p_called, p_setup, p_connect, p_disconnect,
            p_session_time, p_cause, now(), p_digest, v_flags)
    ON CONFLICT (gateway_id, call_id, leg, acct_session_id, call_key) DO UPDATE
       SET stop_received_at = now(), stop_digest = excluded.stop_digest,
           setup_time = coalesce(l.setup_time, excluded.setup_time),
           connect_time = coalesce(excluded.connect_time, l.connect_time),
           disconnect_time = excluded.disconnect_time,
           session_time = excluded.session_time,
           disconnect_cause = excluded.disconnect_cause,
           flags = l.flags || excluded.flags
     WHERE l.stop_received_at IS NULL
    RETURNING l.id INTO v_leg_id;
    IF v_leg_id IS NULL THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::numeric, NULL::numeric, NULL::bigint;
        RETURN;
    END IF;
    IF p_hold_id IS NOT NULL THEN
        DELETE FROM kondge.reservation r
         WHERE r.id = p_hold_id AND r.gateway_id = p_gateway_id AND r.call_key = p_call_key
           AND r.card_id IS NOT DISTINCT FROM p_card_id;
        IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM kondge.cdr c
                        WHERE c.gateway_id = p_gateway_id AND c.call_key = p_call_key) THEN
                RETURN QUERY SELECT * FROM kondge.radius_settle_billed(v_leg_id);
                RETURN;
            END IF;
            RAISE EXCEPTION 'radius_settle: hold % is not the hold of call % of gateway % on '
                            'card %', p_hold_id, p_call_key, p_gateway_id, p_card_id
                  USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;

    IF v_card.id IS NULL THEN
        IF p_card_id IS NULL THEN
            v_flags := v_flags || ARRAY['unknown-card'];
        END IF;
    ELSIF v_cost > 0 THEN
        IF v_card.currency <> p_currency THEN
            v_flags := v_flags || ARRAY['currency-mismatch'];
        ELSE
            v_holds := kondge.card_holds(v_card.id, NULL, NULL);
            v_room := v_card.balance - v_holds.held
                      + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
            v_charge := least(v_cost, greatest(v_room, 0));
            IF v_charge < v_cost THEN
                v_flags := v_flags || ARRAY['overrun'];
            END IF;
        END IF;
    END IF;

    INSERT INTO kondge.cdr
           (gateway_id, call_id, call_key, leg, acct_session_id, card_id, card_number, caller,
            destination, access_number, category, connect_time, disconnect_time, duration,
            session_time, disconnect_cause, tariff_version_id, plan_id, destination_id,
            rate_prefix, price_per_minute, cost, charge, uncollected, currency, flags,
            granted_seconds, authorised_at)
    VALUES (p_gateway_id, p_call_id, p_call_key, p_leg, p_acct_session_id, v_card.id,
            (SELECT c.number FROM kondge.card c WHERE c.id = p_card_id), p_caller,
            p_destination, p_access_number, p_category, p_connect, p_disconnect,
            coalesce(p_duration, 0), p_session_time, p_cause, p_version_id, p_plan_id,
            p_destination_id, p_rate_prefix, p_price, v_cost, v_charge, v_cost - v_charge,
            coalesce(v_card.currency, p_currency), v_flags, p_granted, p_authorised_at)
    ON CONFLICT (gateway_id, call_key) DO NOTHING
    RETURNING id INTO v_cdr_id;
    IF v_cdr_id IS NULL AND p_hold_id IS NULL THEN
        RETURN QUERY SELECT * FROM kondge.radius_settle_billed(v_leg_id);
        RETURN;
    ELSIF v_cdr_id IS NULL THEN
        RAISE EXCEPTION 'radius_settle: call % of gateway % has a CDR but its leg was not stopped',
                        p_call_key, p_gateway_id USING ERRCODE = 'unique_violation';
    END IF;

    v_after := v_card.balance;
    v_first := v_card.id IS NOT NULL AND v_card.first_used_at IS NULL
               AND coalesce(p_duration, 0) > 0;
    IF v_first AND v_card.validity = 'after-first-use' THEN
        v_expiry := now() + make_interval(days => v_card.valid_days);
    END IF;
    IF v_charge > 0 THEN
        -- the charge, and a first call's start of the validity clock, in one UPDATE
        SELECT l.balance_after INTO v_after
          FROM kondge.post_ledger(ARRAY[v_card.id], ARRAY[-v_charge], 'call',
                                  ARRAY['call:' || p_gateway_id || ':' || p_call_key],
                                  'cdr ' || v_cdr_id,
                                  CASE WHEN v_first THEN now() END, v_expiry) l;
        v_first := v_first AND NOT FOUND;   -- posted: its clock started with it
    END IF;
    IF v_first THEN
        UPDATE kondge.card
           SET first_used_at = now(), expires_at = coalesce(v_expiry, expires_at)
         WHERE id = v_card.id;
    END IF;
    RETURN QUERY SELECT 'charged'::text, v_charge, v_after, v_cdr_id;
END;
$$;
