-- The call path, cheaper per call for PostgreSQL: the same answers and the
-- same rows, fewer plans, index entries, locks and statements. Where the
-- time went was measured with bench/profile_calls.py (track_functions) and
-- pg_stat_statements on its cluster; the figures below are from there.
SET search_path = kondge, public;

-- The rating of a stopped call, step by step. As one statement (0007) its
-- plan was made again on every call (a custom plan each time: 0.24 ms of
-- the 0.79 ms it cost); each of these small statements keeps its plan.
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
