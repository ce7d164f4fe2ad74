-- What a card's holds take from it now: the money of its active holds
-- (v_active_reservation) and the number of its calls up (a live call, or a
-- hold whose call may still start), leaving out the unstarted hold of the
-- call (p_gateway_id, p_call_id) itself, which a repeated stage 2 replaces.
CREATE OR REPLACE FUNCTION kondge.card_holds(
    p_card_id bigint, p_gateway_id integer, p_call_id text,
    OUT held numeric, OUT calls integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT coalesce(sum(r.amount) FILTER (
               WHERE r.state = 'live'
                  OR r.hold_expires_at + make_interval(secs => r.granted_seconds) > now()), 0),
           count(*) FILTER (WHERE r.state = 'live' OR r.hold_expires_at > now())
      INTO held, calls
      FROM kondge.reservation r
     WHERE r.card_id = p_card_id AND r.state <> 'lapsed'
       AND NOT (r.gateway_id = p_gateway_id AND r.call_id = p_call_id
                AND r.state = 'held' AND r.acct_session_id IS NULL);
END;
$$;
