-- An audit record says which database role made it and when, whoever
-- writes it: session_user (the role that connected, which a session cannot
-- change; inside a SECURITY DEFINER function current_user is the owner,
-- session_user still the caller) and the transaction's time.
CREATE OR REPLACE FUNCTION kondge.audit_log_stamped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_user := session_user;
    NEW.at := now();
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER audit_log_stamped BEFORE INSERT ON kondge.audit_log
    FOR EACH ROW EXECUTE FUNCTION kondge.audit_log_stamped();
