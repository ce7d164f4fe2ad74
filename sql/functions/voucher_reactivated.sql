-- Reactivating a voucher gives it five tries of its PIN again.
CREATE OR REPLACE FUNCTION kondge.voucher_reactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.failed_attempts := 0;
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER voucher_reactivated BEFORE UPDATE OF status ON kondge.voucher
    FOR EACH ROW WHEN (OLD.status <> 'active' AND NEW.status = 'active')
    EXECUTE FUNCTION kondge.voucher_reactivated();
