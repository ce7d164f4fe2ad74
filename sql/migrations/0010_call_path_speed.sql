-- The call path, cheaper per call for PostgreSQL: the same answers and the
-- same rows, fewer plans, index entries, locks and statements. Where the
-- time went was measured with bench/profile_calls.py (track_functions) and
-- pg_stat_statements on its cluster; the figures below are from there.
SET search_path = kondge, public;

-- The rating of a stopped call, step by step. As one statement (0007),
-- once call_leg holds some history, its plan was made again on every call
-- (a custom plan each time, 0.16 ms; the function 0.50 ms of CPU, 0.37 ms
-- now); each of these small statements keeps its plan.
CREATE OR REPLACE FUNCTION radius_rate_for_stop(
    p_number text, p_gateway_id integer, p_call_id text, p_destination text,
    p_caller text, p_at timestamptz
) RETURNS TABLE (number text, currency char(3), rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
DECLARE
    v_number text := p_number;
    v_card   record;
    v_access text;
BEGIN
    IF v_number IS NULL THEN
        -- the billed leg carries no card: the other leg of the call names it
        SELECT l.user_name INTO v_number FROM kondge.call_leg l
         WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
           AND l.user_name ~ '^[0-9]{4,20}$' LIMIT 1;
    END IF;
    SELECT c.id, c.currency, c.category, c.tariff_id INTO v_card
      FROM kondge.card c WHERE c.number = v_number;
    IF v_card.id IS NULL THEN
        RETURN QUERY SELECT v_number, NULL::char(3), NULL::text;
        RETURN;
    END IF;
    -- the access number: what the incoming leg dialled
    SELECT l.called INTO v_access FROM kondge.call_leg l
     WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id AND l.leg = 'answer';
    RETURN QUERY SELECT v_number, v_card.currency::char(3),
        kondge.rating_context(v_card.category, p_destination, p_caller, v_access,
                              p_gateway_id, p_at, v_card.tariff_id)::text;
END;
$$;

-- Row versions that stay on their page (HOT updates) write no index
-- entries; an update can be one only if it changes no indexed column, and
-- a partial index's predicate counts. card_expiring's (balance > 0) made
-- every charged call write a new entry into each of the card's five
-- indexes (8 WAL records for the balance update instead of 1). On
-- expires_at alone it serves `kondge cards expire` (expires_at <= now AND
-- balance > 0) as well. New cards leave room in their pages for it.
DROP INDEX card_expiring;
CREATE INDEX card_expiring ON card (expires_at) WHERE expires_at IS NOT NULL;
ALTER TABLE card SET (fillfactor = 90);

-- reservation_started (state, started_at) made the Start of every call
-- (held -> live, started_at set) write an entry into each of the
-- reservation's four indexes. The table holds only the calls up now; the
-- sweep reads it every 30 s (it could not use started_at there anyway:
-- started_at + granted_seconds + grace <= now()).
DROP INDEX reservation_started;

-- record_leg as in 0004 (with 0007's SECURITY DEFINER and search_path),
-- but two things cheaper:
--  - the billed Stop starts the card's validity clock itself, in the one
--    update of the card it makes anyway, instead of 0008's trigger on cdr:
--    that trigger ran for every answered call (0.135 ms a call, track_functions)
--    and its update found the card already used on every call but the first.
--    record_leg writes every CDR (the sweep's stand-in Stop goes through it);
--  - the Start of the billed leg learns whether its Stop came first from the
--    row its upsert returns, not from a query of that row again.
CREATE OR REPLACE FUNCTION record_leg(
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
DECLARE
    v_leg_id   bigint;
    v_stopped  timestamptz;
    v_res_id   bigint;
    v_card     record;
    v_cdr_id   bigint;
    v_others   numeric;
    v_room     numeric;
    v_charge   numeric := 0;
    v_flags    text[] := coalesce(p_flags, '{}');
    v_first    boolean;
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
        RETURNING l.id, l.stop_received_at INTO v_leg_id, v_stopped;
        -- (a Start after its own Stop finds the Stop in the row it updated)
        IF v_leg_id IS NOT NULL AND p_bill AND v_stopped IS NULL THEN
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

    SELECT c.id, c.balance, c.currency, c.first_used_at, cat.billing, cat.credit_limit,
           cat.validity, cat.valid_days INTO v_card
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
    END IF;
    -- the card's first answered call, charged or free, starts its validity
    -- clock (0008: first_used_at, and the expiry of an after-first-use card)
    v_first := v_card.id IS NOT NULL AND v_card.first_used_at IS NULL
               AND coalesce(p_session_time, 0) > 0;
    IF v_charge > 0 OR v_first THEN
        UPDATE kondge.card
           SET balance = balance - v_charge,
               first_used_at = CASE WHEN v_first THEN now() ELSE first_used_at END,
               expires_at = CASE WHEN v_first AND v_card.validity = 'after-first-use'
                                 THEN now() + make_interval(days => v_card.valid_days)
                                 ELSE expires_at END
         WHERE id = v_card.id;
    END IF;
    RETURN QUERY SELECT 'charged'::text, v_charge, v_card.balance - v_charge;
END;
$$;

DROP TRIGGER cdr_first_use ON cdr;
DROP FUNCTION card_first_use();

-- Every call record named its gateway through a foreign key (call_leg,
-- reservation, cdr) and every CDR its tariff version. Checking one locks
-- the row it names (FOR KEY SHARE), and all the calls through a gateway, or
-- on a tariff, name the same row: 5 such locks a call, each a WAL record,
-- and with calls at once a new MultiXact nearly every time (3.2 a call,
-- four calls at once through one gateway). Gateways and tariff versions are
-- never deleted (a removed gateway keeps its row, with removed_at); these
-- triggers keep that true for every row a call record names, as the
-- foreign keys did, with no lock on the call path. What the call path
-- writes names ids it has just read from those tables (the gateway
-- directory, rating_context); only its SECURITY DEFINER functions write
-- call records.
ALTER TABLE call_leg DROP CONSTRAINT call_leg_gateway_id_fkey;
ALTER TABLE reservation DROP CONSTRAINT reservation_gateway_id_fkey;
ALTER TABLE cdr DROP CONSTRAINT cdr_gateway_id_fkey;
ALTER TABLE cdr DROP CONSTRAINT cdr_tariff_version_fkey;

-- One function for both tables' triggers (row: DELETE, UPDATE OF id;
-- statement: TRUNCATE, where OLD is null and any call record refuses).
CREATE FUNCTION kept_for_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'gateway' AND (
           EXISTS (SELECT 1 FROM kondge.call_leg WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id)
           OR EXISTS (SELECT 1 FROM kondge.reservation
                       WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id)
           OR EXISTS (SELECT 1 FROM kondge.cdr WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id))
       OR TG_TABLE_NAME = 'tariff_version' AND
           EXISTS (SELECT 1 FROM kondge.cdr WHERE TG_OP = 'TRUNCATE' OR tariff_id = OLD.id) THEN
        RAISE EXCEPTION 'call records name this %: it stays (kondge gateways remove retires '
                        'a gateway)', replace(TG_TABLE_NAME, '_', ' ')
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD WHEN 'UPDATE' THEN NEW END;
END;
$$;
CREATE TRIGGER kept_for_calls BEFORE DELETE OR UPDATE OF id ON gateway
    FOR EACH ROW EXECUTE FUNCTION kept_for_calls();
CREATE TRIGGER kept_for_calls_truncate BEFORE TRUNCATE ON gateway
    FOR EACH STATEMENT EXECUTE FUNCTION kept_for_calls();
CREATE TRIGGER kept_for_calls BEFORE DELETE OR UPDATE OF id ON tariff_version
    FOR EACH ROW EXECUTE FUNCTION kept_for_calls();
CREATE TRIGGER kept_for_calls_truncate BEFORE TRUNCATE ON tariff_version
    FOR EACH STATEMENT EXECUTE FUNCTION kept_for_calls();
