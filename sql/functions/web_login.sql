-- A card holder logs in to the web portal (kondge_billing/store/portal.py: login)
-- with a card number and the keyed hash of the PIN given (made by the web
-- process, as the call path makes it: the hash never leaves the database),
-- or with a caller number bound to the card and the PIN
-- (web_login_caller.sql). Both end in web_login_proven.sql.
--
-- The PIN is counted by the call path's own rules and counters
-- (pin_failed.sql): a card number's wrong PINs in a row, and its lock, are
-- the same whether the guesses come from a gateway or from the web, so
-- there is one lockout. The web client's address (p_client) is counted
-- like a caller number (KONDGE_PIN_CALLER_TRIES within
-- KONDGE_PIN_CALLER_WINDOW; scope 'web' of pin_guard), which stops one
-- client spraying card numbers. Locks are looked at before the PIN is
-- compared, and a locked key is not counted.
--
-- Returns one row: `refusal` NULL and a new session `token`, or a refusal
-- and nothing else: 'wrong-pin' (a wrong PIN or a number that is no card:
-- one answer, so the portal tells nobody which numbers are cards),
-- 'card-locked', 'caller-locked' (a caller login's number) or
-- 'client-locked' with `refused_until`.
-- The token is 64 hex digits from two random UUIDs (244 random bits, from
-- PostgreSQL's strong random source); the session keeps its SHA-256 only.
CREATE OR REPLACE FUNCTION kondge.web_login(p_number text, p_pin_hash text, p_client text)
RETURNS TABLE (refusal text, refused_until timestamptz, token text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
DECLARE
    v_card record;
BEGIN
    SELECT c.id, c.pin_hash INTO v_card FROM kondge.card c WHERE c.number = p_number;
    RETURN QUERY SELECT * FROM kondge.web_login_proven(
        v_card.id, p_number, NULL, v_card.id IS NOT NULL AND v_card.pin_hash = p_pin_hash,
        p_client);
END;
$$;
