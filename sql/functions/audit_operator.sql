-- Who a trigger names in the audit log: the operator the transaction named
-- (kondge.operator, set by kondge_billing/store/audit.py: acting), else the
-- database role that connected (a change made in psql).
CREATE OR REPLACE FUNCTION kondge.audit_operator() RETURNS text LANGUAGE sql STABLE AS $$
SELECT coalesce(nullif(current_setting('kondge.operator', true), ''), session_user::text);
$$;
