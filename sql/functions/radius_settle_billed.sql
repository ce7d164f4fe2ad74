-- A record of a call that another record billed meanwhile (radius_settle):
-- its leg is kept, flagged 'call-already-billed', and nothing is charged.
CREATE OR REPLACE FUNCTION kondge.radius_settle_billed(p_leg_id bigint)
RETURNS TABLE (outcome text, charge numeric, balance numeric, cdr_id bigint)
LANGUAGE sql SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
    UPDATE kondge.call_leg l
       SET flags = l.flags || ARRAY['call-already-billed']
     WHERE l.id = p_leg_id AND NOT 'call-already-billed' = ANY (l.flags);
    SELECT 'recorded'::text, 0::numeric, NULL::numeric, NULL::bigint;
$$;
