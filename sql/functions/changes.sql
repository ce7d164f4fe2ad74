-- What changed between two versions of a record, for an audit record:
-- {"field": {"from": old, "to": new}} for every field whose value differs
-- (a null side is left out, as the audit log leaves out nulls).
CREATE OR REPLACE FUNCTION kondge.changes(p_old jsonb, p_new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(jsonb_object_agg(k, jsonb_build_object('from', p_old->k, 'to', p_new->k)), '{}')
  FROM (SELECT jsonb_object_keys(p_old) UNION SELECT jsonb_object_keys(p_new)) AS keys(k)
 WHERE p_old->k IS DISTINCT FROM p_new->k;
$$;
