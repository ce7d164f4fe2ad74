-- A category as its audit records show it: every field an operator sets,
-- its tariff by name, amounts as text (exact, as in every JSON document of
-- the schema).
CREATE OR REPLACE FUNCTION kondge.category_json(p_name text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
SELECT to_jsonb(c) - 'name' - 'created_at' - 'tariff_id'
       || jsonb_build_object('face_value', c.face_value::text,
                             'credit_limit', c.credit_limit::text, 'tariff', t.name)
  FROM kondge.category c LEFT JOIN kondge.tariff t ON t.id = c.tariff_id
 WHERE c.name = p_name;
$$;
