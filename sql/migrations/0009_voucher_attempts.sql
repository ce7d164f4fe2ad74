-- Wrong voucher PINs are counted; after five in a row the voucher is
-- suspended (an operator reactivates it with `kondge cards activate
-- --vouchers`), so a voucher's PIN cannot be guessed by trying them all.
SET search_path = kondge, public;

ALTER TABLE voucher ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0
    CHECK (failed_attempts >= 0);

-- Reactivating a voucher gives it five tries again.
CREATE FUNCTION voucher_reactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.failed_attempts := 0;
    RETURN NEW;
END;
$$;
CREATE TRIGGER voucher_reactivated BEFORE UPDATE OF status ON voucher
    FOR EACH ROW WHEN (OLD.status <> 'active' AND NEW.status = 'active')
    EXECUTE FUNCTION voucher_reactivated();
