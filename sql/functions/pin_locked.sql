-- The audit record of a lock: what was locked, until when, and the
-- request that locked it.
CREATE OR REPLACE FUNCTION kondge.pin_locked(
    p_row kondge.pin_guard, p_tries integer, p_number text, p_caller text,
    p_gateway_id integer)
RETURNS void
LANGUAGE sql SET search_path = kondge, public AS $$
    INSERT INTO kondge.audit_log (operator, action, selection, details, count)
    SELECT 'call path', 'pin lock',
           jsonb_build_object(p_row.scope, CASE p_row.scope WHEN 'gateway' THEN gw.name
                                                            ELSE p_row.key END),
           jsonb_strip_nulls(jsonb_build_object(
               'until', CASE WHEN p_row.locked_until = 'infinity' THEN 'kondge cards unlock'
                             ELSE p_row.locked_until::text END,
               'wrong_pins', p_tries,
               'lock_in_a_row', CASE WHEN p_row.scope = 'card' THEN p_row.locks END,
               'card_number', p_number, 'caller', p_caller, 'gateway', gw.name)),
           1
      FROM (SELECT (SELECT g.name FROM kondge.gateway g WHERE g.id = p_gateway_id) AS name) gw;
$$;
