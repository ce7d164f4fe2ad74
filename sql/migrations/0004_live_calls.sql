-- Live calls: reservations (holds) and sessions.
--
-- Stage 2 reserves the cost of the time it grants: a row here in state
-- 'held'. Accounting Start turns it 'live'; Stop settles the call (CDR,
-- ledger charge) and deletes the row, which returns what was not used. A
-- hold whose call never starts stops counting at hold_expires_at; a live
-- call whose Stop never comes is closed by `kondge sessions sweep`.
-- A card's available balance = balance (+ credit limit, postpaid) - the
-- amounts of its active reservations.
SET search_path = kondge, public;

-- A per-category cap on one call's length (null: the server's cap only).
ALTER TABLE category ADD COLUMN max_call_seconds integer CHECK (max_call_seconds > 0);

CREATE TABLE reservation (
    id              bigserial PRIMARY KEY,
    card_id         bigint NOT NULL REFERENCES card,
    gateway_id      integer NOT NULL REFERENCES gateway,
    call_id         text NOT NULL,     -- h323-conf-id; 'auth:…' when the request had none
    caller          text,
    destination     text,
    amount          numeric NOT NULL CHECK (amount >= 0),
    granted_seconds integer NOT NULL CHECK (granted_seconds >= 0),
    state           text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'live')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    hold_expires_at timestamptz NOT NULL,
    started_at      timestamptz,
    interim_seconds integer,
    interim_at      timestamptz,
    flags           text[] NOT NULL DEFAULT '{}',
    UNIQUE (gateway_id, call_id)
);
CREATE INDEX reservation_card ON reservation (card_id);
CREATE INDEX reservation_started ON reservation (state, started_at);

-- Reservations that still count against the card's balance.
CREATE VIEW v_active_reservation AS
SELECT * FROM reservation WHERE state = 'live' OR hold_expires_at > now();

-- Reserve `p_amount` for a call on a card, atomically: the card row is
-- locked, the active reservations summed again, and the hold made only if
-- it still fits and the category's call limit is not reached. A repeated
-- authorisation of the same call replaces its own unstarted hold.
-- Returns 'held', 'short' (it no longer fits: another call took part of
-- the balance meanwhile; `available` says what is left) or 'in-use'.
CREATE FUNCTION radius_hold(
    p_card_id bigint, p_gateway_id integer, p_call_id text, p_caller text,
    p_destination text, p_amount numeric, p_seconds integer, p_hold_ttl integer
) RETURNS TABLE (outcome text, available numeric, active_calls integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_card   record;
    v_held   numeric;
    v_active integer;
    v_avail  numeric;
BEGIN
    SELECT c.balance, cat.billing, cat.credit_limit, cat.max_calls INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.id = p_card_id FOR UPDATE OF c;
    SELECT coalesce(sum(amount), 0), count(*) INTO v_held, v_active
      FROM kondge.v_active_reservation r
     WHERE r.card_id = p_card_id
       AND NOT (r.gateway_id = p_gateway_id AND r.call_id = p_call_id);
    v_avail := v_card.balance - v_held
               + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
    IF v_active >= v_card.max_calls THEN
        RETURN QUERY SELECT 'in-use'::text, v_avail, v_active;
        RETURN;
    END IF;
    IF p_amount > v_avail THEN
        RETURN QUERY SELECT 'short'::text, v_avail, v_active;
        RETURN;
    END IF;
    INSERT INTO kondge.reservation AS r
           (card_id, gateway_id, call_id, caller, destination, amount, granted_seconds,
            hold_expires_at)
    VALUES (p_card_id, p_gateway_id, p_call_id, p_caller, p_destination, p_amount, p_seconds,
            now() + make_interval(secs => p_hold_ttl))
    ON CONFLICT (gateway_id, call_id) DO UPDATE
       SET card_id = excluded.card_id, caller = excluded.caller,
           destination = excluded.destination, amount = excluded.amount,
           granted_seconds = excluded.granted_seconds, created_at = now(),
           hold_expires_at = excluded.hold_expires_at
     WHERE r.state = 'held';
    RETURN QUERY SELECT 'held'::text, v_avail - p_amount, v_active + 1;
END;
$$;

-- The reservation an accounting record of the billed leg belongs to: by
-- the call's identity, else (a gateway that sends no h323-conf-id in its
-- Access-Request) the card's oldest hold made without one on that gateway.
CREATE FUNCTION find_reservation(p_gateway_id integer, p_call_id text, p_card_number text)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
-- PL/pgSQL so that its plans are cached per session (a SQL function called
-- from PL/pgSQL is planned again on every call).
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM kondge.reservation
     WHERE gateway_id = p_gateway_id AND call_id = p_call_id;
    IF v_id IS NULL THEN
        SELECT r.id INTO v_id
          FROM kondge.reservation r JOIN kondge.card c ON c.id = r.card_id
         WHERE r.gateway_id = p_gateway_id AND c.number = p_card_number
           AND r.call_id LIKE 'auth:%' AND r.state = 'held'
         ORDER BY r.created_at LIMIT 1;
    END IF;
    RETURN v_id;
END;
$$;

-- The real Stop of a call the sweep closed: the CDR gets the real talk
-- time, cost and charge, the difference becomes an 'adjustment' ledger
-- entry keyed by the call (so it happens once), and the CDR is flagged
-- 'corrected'. A repeat of the real Stop, or a call never swept, is a
-- plain duplicate.
CREATE FUNCTION correct_swept_call(
    p_gateway_id integer, p_call_id text, p_leg text, p_disconnect timestamptz,
    p_session_time integer, p_cause text, p_cost numeric
) RETURNS TABLE (outcome text, charge numeric, balance numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_cdr    kondge.cdr%ROWTYPE;
    v_card   record;
    v_others numeric;
    v_room   numeric;
    v_charge numeric;
    v_delta  numeric;
BEGIN
    SELECT * INTO v_cdr FROM kondge.cdr
     WHERE gateway_id = p_gateway_id AND call_id = p_call_id
       AND 'stop-missing' = ANY(flags) AND NOT 'corrected' = ANY(flags)
       FOR UPDATE;
    IF v_cdr.id IS NULL OR v_cdr.card_id IS NULL THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    SELECT c.id, c.balance, cat.billing, cat.credit_limit INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.id = v_cdr.card_id FOR UPDATE OF c;
    SELECT coalesce(sum(amount), 0) INTO v_others
      FROM kondge.v_active_reservation WHERE card_id = v_card.id;
    -- what the card could pay for this call: its balance with this call's
    -- charge given back, less what other live calls hold
    v_room := v_card.balance + v_cdr.charge - v_others
              + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
    v_charge := least(coalesce(p_cost, 0), greatest(v_room, 0));
    v_delta := v_charge - v_cdr.charge;
    IF v_delta <> 0 THEN
        INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
        VALUES (v_card.id, -v_delta, 'adjustment',
                'correction:' || p_gateway_id || ':' || p_call_id,
                v_card.balance - v_delta, 'late Stop of cdr ' || v_cdr.id);
        UPDATE kondge.card SET balance = balance - v_delta WHERE id = v_card.id;
    END IF;
    UPDATE kondge.cdr
       SET duration = coalesce(p_session_time, 0), disconnect_time = p_disconnect,
           disconnect_cause = p_cause, cost = coalesce(p_cost, 0), charge = v_charge,
           uncollected = coalesce(p_cost, 0) - v_charge, flags = flags || ARRAY['corrected']
     WHERE id = v_cdr.id;
    UPDATE kondge.call_leg
       SET session_time = p_session_time, disconnect_time = p_disconnect,
           disconnect_cause = p_cause, flags = flags || ARRAY['corrected']
     WHERE gateway_id = p_gateway_id AND call_id = p_call_id AND leg = p_leg;
    RETURN QUERY SELECT 'corrected'::text, v_charge, v_card.balance - v_delta;
END;
$$;

-- Record one accounting record of one leg, and, for the billed leg's Stop,
-- write the CDR and debit the card: all in one transaction, one round trip.
-- A repeated record (a retransmission with a new packet id, a replay after a
-- restart) finds its leg already recorded and changes nothing. Returns the
-- outcome ('recorded', 'charged' or 'duplicate'), the amount debited and the
-- card's balance after it.
-- With reservations: Start of the billed leg makes its reservation live,
-- Interim-Update records progress, Stop settles and releases it. The charge of a prepaid card is capped so that it never
-- takes what other live calls have reserved, and never goes below zero
-- (below minus the credit limit, postpaid).
CREATE FUNCTION record_leg(
    p_status text,                 -- start | interim | stop
    p_gateway_id integer, p_call_id text, p_leg text, p_acct_session_id text,
    p_user_name text, p_caller text, p_called text,
    p_setup timestamptz, p_connect timestamptz, p_disconnect timestamptz,
    p_session_time integer, p_cause text, p_flags text[],
    -- p_bill: this is the billed leg (its Stop is charged)
    p_bill boolean, p_card_number text, p_destination text,
    p_cost numeric, p_currency text,
    p_tariff_id integer, p_rate_prefix text, p_price numeric
) RETURNS TABLE (outcome text, charge numeric, balance numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_leg_id   bigint;
    v_res_id   bigint;
    v_card     record;
    v_cdr_id   bigint;
    v_others   numeric;
    v_room     numeric;
    v_charge   numeric := 0;
    v_flags    text[] := coalesce(p_flags, '{}');
BEGIN
    IF p_status = 'start' THEN
        INSERT INTO kondge.call_leg AS l
               (gateway_id, call_id, leg, acct_session_id, user_name, caller, called,
                setup_time, connect_time, start_received_at, flags)
        VALUES (p_gateway_id, p_call_id, p_leg, p_acct_session_id, p_user_name, p_caller,
                p_called, p_setup, p_connect, now(), v_flags)
        ON CONFLICT (gateway_id, call_id, leg) DO UPDATE
           SET start_received_at = now(),
               setup_time = coalesce(l.setup_time, excluded.setup_time),
               connect_time = coalesce(l.connect_time, excluded.connect_time),
               flags = l.flags || excluded.flags
         WHERE l.start_received_at IS NULL
        RETURNING l.id INTO v_leg_id;
        IF v_leg_id IS NOT NULL AND p_bill
           AND NOT EXISTS (SELECT 1 FROM kondge.call_leg
                            WHERE gateway_id = p_gateway_id AND call_id = p_call_id
                              AND leg = p_leg AND stop_received_at IS NOT NULL) THEN
            v_res_id := kondge.find_reservation(p_gateway_id, p_call_id,
                                                coalesce(p_card_number, p_user_name));
            IF v_res_id IS NOT NULL THEN
                UPDATE kondge.reservation
                   SET state = 'live', started_at = now(), call_id = p_call_id
                 WHERE id = v_res_id;
            ELSE
                -- a call nobody authorised here: shown as live, reserving nothing
                INSERT INTO kondge.reservation
                       (card_id, gateway_id, call_id, caller, destination, amount,
                        granted_seconds, state, hold_expires_at, started_at, flags)
                SELECT c.id, p_gateway_id, p_call_id, p_caller, p_destination, 0, 0, 'live',
                       now(), now(), ARRAY['no-authorisation']
                  FROM kondge.card c WHERE c.number = coalesce(p_card_number, p_user_name)
                ON CONFLICT (gateway_id, call_id) DO NOTHING;
            END IF;
        END IF;
        RETURN QUERY SELECT CASE WHEN v_leg_id IS NULL THEN 'duplicate' ELSE 'recorded' END,
                            NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    IF p_status = 'interim' THEN
        INSERT INTO kondge.call_leg AS l
               (gateway_id, call_id, leg, acct_session_id, user_name, caller, called,
                setup_time, connect_time, session_time, flags)
        VALUES (p_gateway_id, p_call_id, p_leg, p_acct_session_id, p_user_name, p_caller,
                p_called, p_setup, p_connect, p_session_time, v_flags)
        ON CONFLICT (gateway_id, call_id, leg) DO UPDATE
           SET session_time = greatest(l.session_time, excluded.session_time)
         WHERE l.stop_received_at IS NULL;
        IF p_bill THEN
            UPDATE kondge.reservation
               SET interim_seconds = greatest(interim_seconds, p_session_time),
                   interim_at = now(),
                   state = 'live', started_at = coalesce(started_at, now())
             WHERE gateway_id = p_gateway_id AND call_id = p_call_id;
        END IF;
        RETURN QUERY SELECT 'recorded'::text, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    IF p_status <> 'stop' THEN
        RAISE EXCEPTION 'record_leg: unknown status %', p_status;
    END IF;

    INSERT INTO kondge.call_leg AS l
           (gateway_id, call_id, leg, acct_session_id, user_name, caller, called,
            setup_time, connect_time, disconnect_time, session_time, disconnect_cause,
            stop_received_at, flags)
    VALUES (p_gateway_id, p_call_id, p_leg, p_acct_session_id, p_user_name, p_caller,
            p_called, p_setup, p_connect, p_disconnect, p_session_time, p_cause, now(),
            v_flags)
    ON CONFLICT (gateway_id, call_id, leg) DO UPDATE
       SET stop_received_at = now(),
           setup_time = coalesce(l.setup_time, excluded.setup_time),
           connect_time = coalesce(excluded.connect_time, l.connect_time),
           disconnect_time = excluded.disconnect_time,
           session_time = excluded.session_time,
           disconnect_cause = excluded.disconnect_cause,
           flags = l.flags || excluded.flags
     WHERE l.stop_received_at IS NULL
    RETURNING l.id INTO v_leg_id;

    IF v_leg_id IS NULL THEN
        -- A repeat. But if the call was closed by the sweep (its Stop was
        -- late, not lost) and this is the real Stop, the charge is put
        -- right once: the CDR takes the real talk time and the difference
        -- is a ledger adjustment.
        IF p_bill AND NOT 'stop-missing' = ANY(v_flags) THEN
            RETURN QUERY SELECT * FROM kondge.correct_swept_call(
                p_gateway_id, p_call_id, p_leg, p_disconnect, p_session_time, p_cause,
                p_cost);
            RETURN;
        END IF;
        RETURN QUERY SELECT 'duplicate'::text, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    IF NOT p_bill THEN
        RETURN QUERY SELECT 'recorded'::text, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    SELECT c.id, c.balance, c.currency, cat.billing, cat.credit_limit INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.number = p_card_number FOR UPDATE OF c;
    v_res_id := kondge.find_reservation(p_gateway_id, p_call_id, p_card_number);
    IF v_res_id IS NOT NULL THEN
        DELETE FROM kondge.reservation WHERE id = v_res_id;
    END IF;
    IF v_card.id IS NULL THEN
        v_flags := v_flags || ARRAY['unknown-card'];
    ELSIF v_card.currency <> p_currency AND p_cost > 0 THEN
        v_flags := v_flags || ARRAY['currency-mismatch'];
    ELSE
        -- What the gateway let the caller talk beyond the granted time is
        -- recorded as uncollected, not taken from other calls' reservations.
        SELECT coalesce(sum(amount), 0) INTO v_others
          FROM kondge.v_active_reservation WHERE card_id = v_card.id;
        v_room := v_card.balance - v_others
                  + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
        v_charge := least(p_cost, greatest(v_room, 0));
        IF v_charge < p_cost THEN
            v_flags := v_flags || ARRAY['overrun'];
        END IF;
    END IF;

    INSERT INTO kondge.cdr
           (gateway_id, call_id, card_id, card_number, caller, destination,
            connect_time, disconnect_time, duration, disconnect_cause,
            tariff_id, rate_prefix, price_per_minute, cost, charge, uncollected,
            currency, flags)
    VALUES (p_gateway_id, p_call_id, v_card.id, p_card_number, p_caller, p_destination,
            p_connect, p_disconnect, coalesce(p_session_time, 0), p_cause,
            p_tariff_id, p_rate_prefix, p_price, coalesce(p_cost, 0), v_charge,
            coalesce(p_cost, 0) - v_charge, coalesce(v_card.currency, p_currency), v_flags)
    ON CONFLICT (gateway_id, call_id) DO NOTHING
    RETURNING id INTO v_cdr_id;

    IF v_cdr_id IS NULL THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    IF v_charge > 0 THEN
        INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
        VALUES (v_card.id, -v_charge, 'call',
                'call:' || p_gateway_id || ':' || p_call_id,
                v_card.balance - v_charge, 'cdr ' || v_cdr_id);
        UPDATE kondge.card SET balance = balance - v_charge WHERE id = v_card.id;
    END IF;
    RETURN QUERY SELECT 'charged'::text, v_charge, v_card.balance - v_charge;
END;
$$;

-- Accounting records the hook could not process (a bug meeting an odd
-- packet): kept whole, answered, and listed for an operator, so that one
-- bad record neither is lost nor blocks the spool behind it.
CREATE TABLE unprocessed_record (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    pairs       jsonb NOT NULL,
    error       text NOT NULL
);
