-- Stage 2's authorisation of a call: reserve p_amount for p_seconds on the
-- card, atomically (the card row is locked, what its other calls hold is
-- summed again), or say why not: 'short' (it no longer fits; `available`
-- says what is left), 'in-use' (the category's call limit), 'unproven'
-- (below). The hold keeps what the call was authorised for: the
-- destination, the number the caller came in on, and the price (tariff
-- version, plan, destination), by which its accounting is billed.
--
-- Only a card proven for this call may be held: the call's login
-- (call_login, written by radius_card after the PIN or the bound caller
-- number matched) must name it, on this gateway, under this call id;
-- otherwise 'unproven' and nothing is held.
--
-- A repeated stage 2 of a call not yet started replaces its own hold. A
-- stage 2 under a call identity that already belongs to another call (one
-- started, claimed or settled: a follow-on call in the same IVR session, a
-- gateway that reuses ids) is a new call with its own key (call_id#n).
CREATE OR REPLACE FUNCTION kondge.radius_hold(
    p_card_id bigint, p_gateway_id integer, p_call_id text, p_caller text,
    p_destination text, p_access_number text, p_category text, p_version_id integer,
    p_plan_id integer, p_destination_id integer, p_rate_prefix text, p_currency text,
    p_amount numeric, p_seconds integer, p_hold_ttl integer
) RETURNS TABLE (outcome text, available numeric, active_calls integer, call_key text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
#variable_conflict use_column
DECLARE
    v_card  record;
    v_holds record;
    v_avail numeric;
    v_own   bigint;
    v_key   text;
    v_id    bigint;
BEGIN
    IF p_amount IS NULL OR p_amount < 0 OR p_seconds IS NULL OR p_seconds < 0 THEN
        RAISE EXCEPTION 'radius_hold: amount % and seconds % must not be negative',
                        p_amount, p_seconds USING ERRCODE = 'check_violation';
    END IF;
    -- the card (locked) and whether it was proven for this call, in one
    -- statement (each costs its executor's set-up)
    SELECT c.balance, cat.billing, cat.credit_limit, cat.max_calls,
           EXISTS (SELECT 1 FROM kondge.call_login l
                    WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
                      AND l.card_id = p_card_id) AS proven
      INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.id = p_card_id FOR UPDATE OF c;
    IF NOT coalesce(v_card.proven, false) THEN
        outcome := 'unproven';
        RETURN NEXT;
        RETURN;
    END IF;
    v_holds := kondge.card_holds(p_card_id, p_gateway_id, p_call_id);
    v_avail := v_card.balance - v_holds.held
               + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
    available := v_avail;
    active_calls := v_holds.calls;
    IF v_holds.calls >= v_card.max_calls THEN
        outcome := 'in-use';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_amount > v_avail THEN
        outcome := 'short';
        RETURN NEXT;
        RETURN;
    END IF;

    -- the call's own unstarted hold, looked for once the card is locked: a
    -- stage 2 of the same call served at once elsewhere has committed its own
    SELECT r.id, r.call_key INTO v_own, v_key FROM kondge.reservation r
     WHERE r.gateway_id = p_gateway_id AND r.call_id = p_call_id
       AND r.state = 'held' AND r.acct_session_id IS NULL
     ORDER BY r.id DESC LIMIT 1;
    IF v_own IS NOT NULL THEN
        UPDATE kondge.reservation
           SET card_id = p_card_id, caller = p_caller, destination = p_destination,
               access_number = p_access_number, category = p_category,
               tariff_version_id = p_version_id, plan_id = p_plan_id,
               destination_id = p_destination_id, rate_prefix = p_rate_prefix,
               currency = p_currency, amount = p_amount, granted_seconds = p_seconds,
               created_at = now(), hold_expires_at = now() + make_interval(secs => p_hold_ttl)
         WHERE id = v_own;
    ELSE
        v_id := nextval('kondge.reservation_id_seq');
        v_key := p_call_id;
        IF EXISTS (SELECT 1 FROM kondge.reservation r
                    WHERE r.gateway_id = p_gateway_id AND r.call_key = p_call_id)
           OR EXISTS (SELECT 1 FROM kondge.cdr d
                       WHERE d.gateway_id = p_gateway_id AND d.call_key = p_call_id) THEN
            v_key := p_call_id || '#' || v_id;
        END IF;
        INSERT INTO kondge.reservation
               (id, card_id, gateway_id, call_id, call_key, caller, destination,
                access_number, category, tariff_version_id, plan_id, destination_id,
                rate_prefix, currency, amount, granted_seconds, hold_expires_at)
        VALUES (v_id, p_card_id, p_gateway_id, p_call_id, v_key, p_caller, p_destination,
                p_access_number, p_category, p_version_id, p_plan_id, p_destination_id,
                p_rate_prefix, p_currency, p_amount, p_seconds,
                now() + make_interval(secs => p_hold_ttl));
    END IF;
    outcome := 'held';
    available := v_avail - p_amount;
    active_calls := v_holds.calls + 1;
    call_key := v_key;
    RETURN NEXT;
END;
$$;
