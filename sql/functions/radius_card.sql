-- Stage 1 and stage 2 (kondge_billing/store/cards.py: for_call): the card for a
-- call, by its number (with its PIN checked here: the caller passes the
-- keyed hash of the PIN it was given, and gets back only whether it
-- matches) or by the caller number bound to it; its category; what its
-- other calls hold; which stage the request is; the number the caller came
-- in on and its policy; and, at stage 2, which price of the card's tariff
-- the destination gets (rating_choice: the ids; the caller keeps the
-- ratings by their ids, kondge_billing/store/prices.py).
--
-- Nothing about a card leaves without its proof. A card-number login
-- returns one row with `refusal` set and nothing else when:
--   gateway-locked, caller-locked, card-locked: too many wrong PINs through
--       this gateway, from this caller number, or for this card number
--       (pin_failed.sql; `refused_until` says until when); checked before
--       the PIN is compared, and not counted, so a locked key learns nothing;
--   unknown: no card has this number; wrong-pin: the PIN does not match (a
--       missing PIN is a wrong one). Both are counted (pin_failed.sql); one
--       that finds a lock committed since the look at the locks is answered
--       as locked, and so is the right PIN then (below).
-- A caller login (p_number NULL) needs a caller number bound to a card; an
-- unbound one returns no row.
--
-- The success path costs what it did: the card's own count and lock come
-- with its row, and caller and gateway locks are looked for only while one
-- may be in force (pin_policy.locks_until, read with the card). It writes
-- nothing more, unless the card had wrong PINs, which the right PIN forgives.
-- What else a login needs comes with the card's row too (the card the
-- caller number is bound to, how many numbers are bound to this card, the
-- number called if it is an access number, and its policy), and the answer
-- is assigned, not selected: every statement a PL/pgSQL function runs costs
-- its executor's set-up, twice a call (docs/performance.md).
--
-- The stage: p_stage when the gateway named it (Service-Type), else a
-- request with no Called-Station-Id or with one of our access numbers in it
-- is a login (stage 1), any other number a destination (stage 2).
-- The access number: at stage 1 the number called; it is kept for the call
-- (call_login) so that stage 2 and the CDR price by it whatever the order
-- of the packets; at stage 2 the one stage 1 kept, else the incoming leg's.
-- The login (call_login, keyed by the gateway and p_call_id) names the card
-- proven for the call: radius_hold and radius_auto_bind act on that card
-- only. Stage 1 writes it once, when it keeps an access number (as it
-- always did) or when the card may bind this caller (a login again changes
-- nothing); stage 2 when it is missing or names another card.
--
-- A login's record is committed without waiting for the WAL flush
-- (synchronous_commit off for this transaction only): it moves no money and
-- is no accounting record, and a request that waits on the disk inside the
-- hook stalls its whole FreeRADIUS process. PostgreSQL itself crashing
-- within the WAL writer's delay (well under a second) may lose it; stage 2
-- then proves the card again by its PIN (or bound caller number) and
-- writes the login anew, and the access number comes from the incoming
-- leg's record, if any. The hold of stage 2 and every accounting record
-- are committed durably, as before; a refused login (the counts of wrong
-- PINs) is too.
CREATE OR REPLACE FUNCTION kondge.radius_card(
    p_number text, p_pin_hash text, p_caller_number text, p_called text, p_caller text,
    p_gateway_id integer, p_call_id text, p_conf_id text, p_stage text, p_at timestamptz
) RETURNS TABLE (
    refusal text, refused_until text,
    id bigint, number text, balance numeric, currency char(3), status text,
    expires_at timestamptz, language text, category text, billing text, credit_limit numeric,
    max_calls integer, max_call_seconds integer, auto_bind boolean, max_callers integer,
    held numeric, active_calls integer, stage text, access_number text, access_login text,
    access_language text, access_prompt_id integer, callers_bound bigint,
    caller_card_id bigint, rating_version_id integer, rating_plan_id integer,
    rating_destination_id integer, rating_prefix text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
#variable_conflict use_column
DECLARE
    v_card   record;
    v_stage  text;
    v_access text;
    v_login  record;
    v_holds  record;
    v_gateway_until timestamptz;     -- the locks of pin_guard: the gateway's,
    v_caller_until  timestamptz;     -- the caller number's,
    v_number_until  timestamptz;     -- a number's that is no card
BEGIN
    SELECT c.id, c.number, c.pin_hash, c.balance, c.currency, c.status, c.expires_at,
           c.language, c.category, c.tariff_id, cat.tariff_id AS category_tariff_id,
           cat.billing, cat.credit_limit, cat.max_calls, cat.max_call_seconds, cat.auto_bind,
           cat.max_callers, c.pin_failures, c.pin_locks, c.pin_locked_until,
           (SELECT pp.locks_until FROM kondge.pin_policy pp) AS locks_until,
           (SELECT b.card_id FROM kondge.caller b WHERE b.number = p_caller_number)
               AS bound_card,
           (SELECT count(*) FROM kondge.caller b WHERE b.card_id = c.id) AS callers_bound,
           an.number AS called_access, an.login AS called_login,
           an.language AS called_language, an.prompt_id AS called_prompt_id
      INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
           LEFT JOIN kondge.access_number an ON an.number = p_called
     -- one index probe by number, with the plan kept for every call: the
     -- caller's bound card is looked up only without a number
     WHERE c.number = coalesce(p_number, (SELECT bc.number FROM kondge.caller b
                                            JOIN kondge.card bc ON bc.id = b.card_id
                                           WHERE b.number = p_caller_number));
    IF p_number IS NULL THEN
        IF v_card.id IS NULL THEN
            RETURN;
        END IF;
    ELSIF v_card.id IS NULL OR v_card.pin_hash IS DISTINCT FROM p_pin_hash
          OR v_card.pin_failures > 0 OR v_card.pin_locks > 0 OR v_card.locks_until > now() THEN
        -- not the plain right PIN: the locks, then the count (the right PIN of
        -- a card with no wrong PINs, while no caller or gateway is locked, skips this)
        IF v_card.id IS NULL OR v_card.locks_until > now() THEN
            SELECT max(g.locked_until) FILTER (WHERE g.scope = 'gateway'),
                   max(g.locked_until) FILTER (WHERE g.scope = 'caller'),
                   max(g.locked_until) FILTER (WHERE g.scope = 'card')
              INTO v_gateway_until, v_caller_until, v_number_until
              FROM kondge.pin_guard g
             WHERE (g.scope = 'card' AND g.key = p_number AND v_card.id IS NULL)
                OR (g.scope = 'caller' AND g.key = p_caller_number)
                OR (g.scope = 'gateway' AND g.key = p_gateway_id::text);
        END IF;
        v_number_until := coalesce(v_card.pin_locked_until, v_number_until);
        refusal := CASE WHEN v_gateway_until > now() THEN 'gateway-locked'
                        WHEN v_caller_until > now() THEN 'caller-locked'
                        WHEN v_number_until > now() THEN 'card-locked' END;
        IF refusal IS NULL AND (v_card.id IS NULL OR v_card.pin_hash IS DISTINCT FROM p_pin_hash)
        THEN
            refusal := coalesce(
                kondge.pin_failed(v_card.id, p_number, p_caller_number, p_gateway_id),
                CASE WHEN v_card.id IS NULL THEN 'unknown' ELSE 'wrong-pin' END);
        ELSIF refusal IS NULL AND (v_card.pin_failures > 0 OR v_card.pin_locks > 0) THEN
            -- the right PIN forgives the wrong ones, unless a lock came meanwhile
            UPDATE kondge.card c SET pin_failures = 0, pin_locks = 0, pin_locked_until = NULL
             WHERE c.id = v_card.id AND NOT coalesce(c.pin_locked_until > now(), false);
            IF NOT FOUND THEN
                refusal := 'card-locked';
            END IF;
        END IF;
        IF refusal IS NOT NULL THEN
            refused_until := kondge.pin_lock_end(refusal, p_number, p_caller_number,
                                                 p_gateway_id)::text;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    v_stage := coalesce(p_stage, CASE
        WHEN coalesce(p_called, '') = '' THEN 'login'
        WHEN v_card.called_access IS NOT NULL THEN 'login'
        ELSE 'destination' END);
    IF v_stage = 'login' THEN
        v_access := nullif(p_called, '');
        -- the number called's policy, read with the card (none: not an access number)
        access_login := v_card.called_login;
        access_language := v_card.called_language;
        access_prompt_id := v_card.called_prompt_id;
        IF (p_conf_id IS NOT NULL AND v_access IS NOT NULL)
           OR (p_number IS NOT NULL AND v_card.auto_bind AND p_caller_number IS NOT NULL
               AND v_card.bound_card IS NULL) THEN
            PERFORM set_config('synchronous_commit', 'off', true);
            INSERT INTO kondge.call_login (gateway_id, call_id, access_number, card_id)
            VALUES (p_gateway_id, p_call_id, v_access, v_card.id)
            ON CONFLICT (gateway_id, call_id) DO NOTHING;
        END IF;
    ELSE
        SELECT l.access_number, l.card_id, a.login, a.language, a.prompt_id INTO v_login
          FROM kondge.call_login l LEFT JOIN kondge.access_number a ON a.number = l.access_number
         WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id;
        v_access := v_login.access_number;
        access_login := v_login.login;
        access_language := v_login.language;
        access_prompt_id := v_login.prompt_id;
        IF v_access IS NULL AND p_conf_id IS NOT NULL THEN
            SELECT l.called INTO v_access FROM kondge.call_leg l
             WHERE l.gateway_id = p_gateway_id AND l.call_id = p_conf_id AND l.leg = 'answer'
             LIMIT 1;
            SELECT a.login, a.language, a.prompt_id
              INTO access_login, access_language, access_prompt_id
              FROM kondge.access_number a WHERE a.number = v_access;
        END IF;
        IF v_login.card_id IS DISTINCT FROM v_card.id THEN
            INSERT INTO kondge.call_login AS l (gateway_id, call_id, access_number, card_id)
            VALUES (p_gateway_id, p_call_id, NULL, v_card.id)
            ON CONFLICT (gateway_id, call_id) DO UPDATE SET card_id = EXCLUDED.card_id;
        END IF;
    END IF;
    v_holds := kondge.card_holds(v_card.id, p_gateway_id, p_call_id);

    id := v_card.id;
    number := v_card.number;
    balance := v_card.balance;
    currency := v_card.currency;
    status := v_card.status;
    expires_at := v_card.expires_at;
    language := v_card.language;
    category := v_card.category;
    billing := v_card.billing;
    credit_limit := v_card.credit_limit;
    max_calls := v_card.max_calls;
    max_call_seconds := v_card.max_call_seconds;
    auto_bind := v_card.auto_bind;
    max_callers := v_card.max_callers;
    held := v_holds.held;
    active_calls := v_holds.calls;
    stage := v_stage;
    access_number := v_access;
    access_login := coalesce(access_login, 'both');
    callers_bound := v_card.callers_bound;
    caller_card_id := v_card.bound_card;
    IF v_stage = 'destination' THEN
        SELECT c.version_id, c.plan_id, c.destination_id, c.prefix
          INTO rating_version_id, rating_plan_id, rating_destination_id, rating_prefix
          FROM kondge.rating_choice(v_card.category, p_called, p_caller, v_access,
                                    p_gateway_id, p_at,
                                    coalesce(v_card.tariff_id, v_card.category_tariff_id)) c;
    END IF;
    RETURN NEXT;
END;
$$;
