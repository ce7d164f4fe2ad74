-- The audit record of a lock (pin_failed, pin_count): what was locked, until
-- when, after how many failures, and the request that locked it. p_locks:
-- a card number's locks in a row, this one included (NULL for others).
CREATE OR REPLACE FUNCTION kondge.pin_locked(
    p_scope text, p_key text, p_until timestamptz, p_tries integer, p_locks integer,
    p_caller text, p_gateway_id integer)
RETURNS void
LANGUAGE sql SET search_path = kondge, public AS $$
    SELECT kondge.audit_record(
               'call path', 'pin lock', 1,
               jsonb_build_object(p_scope, CASE p_scope WHEN 'gateway' THEN gw.name ELSE p_key END),
               jsonb_build_object(
                   'until', CASE WHEN p_until = 'infinity' THEN 'kondge cards unlock'
                                 ELSE p_until::text END,
                   'wrong_pins', p_tries, 'lock_in_a_row', p_locks,
                   'caller', p_caller, 'gateway', gw.name))
      FROM (SELECT (SELECT g.name FROM kondge.gateway g WHERE g.id = p_gateway_id) AS name) gw;
$$;
