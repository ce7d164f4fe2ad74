-- The card holder logs out (kondge_billing/store/portal.py: logout): the session
-- ends at once. True if there was one.
CREATE OR REPLACE FUNCTION kondge.web_logout(p_token text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
    WITH gone AS (
        DELETE FROM kondge.web_session s
         WHERE s.token_hash = encode(sha256(convert_to(coalesce(p_token, ''), 'UTF8')), 'hex')
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;
