-- Keep an accounting record the hook could not process, whole.
CREATE OR REPLACE FUNCTION kondge.radius_park(p_pairs jsonb, p_error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
INSERT INTO kondge.unprocessed_record (pairs, error) VALUES (p_pairs, p_error);
$$;
