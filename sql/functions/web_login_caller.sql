-- A card holder logs in to the web portal with a caller number bound to
-- the card and the card's PIN (kondge_billing/store/portal.py: login_caller).
--
-- The PIN's keyed hash is made with the card number, which the portal does
-- not know and must not learn before the PIN is proven: so the portal
-- hands over the PIN and the PIN key, and the hash is made here
-- (web_pin_hash.sql), with the number of the card the caller number is
-- bound to. Nothing is kept of either.
--
-- Counted as the call path counts a wrong PIN from that caller number
-- (pin_failed.sql): against the card (its wrong PINs in a row and its
-- lock, shared with card-number logins from a gateway or the web) and
-- against the caller number (KONDGE_PIN_CALLER_TRIES within
-- KONDGE_PIN_CALLER_WINDOW, the same count a gateway's requests from that
-- number add to); and, as every web login, against the client's address.
-- A caller number bound to no card is counted as a number that is no card
-- (in pin_guard, under its own digits) and as a caller number, so that it
-- gets the same answers, and the same locks after the same number of
-- tries, as a bound one with a wrong PIN: the answer tells nothing about
-- the number without the right PIN. The hash is made either way.
--
-- Returns what web_login returns; a caller number that is not 4 to 20
-- digits is refused (invalid_parameter_value, in web_login_proven).
CREATE OR REPLACE FUNCTION kondge.web_login_caller(p_caller text, p_pin text, p_key text,
                                                   p_client text)
RETURNS TABLE (refusal text, refused_until timestamptz, token text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
DECLARE
    v_card record;
    v_hash text;
BEGIN
    SELECT c.id, c.number, c.pin_hash INTO v_card
      FROM kondge.caller b JOIN kondge.card c ON c.id = b.card_id
     WHERE b.number = p_caller;
    v_hash := kondge.web_pin_hash(coalesce(p_key, ''), coalesce(v_card.number, p_caller),
                                  coalesce(p_pin, ''));
    RETURN QUERY SELECT * FROM kondge.web_login_proven(
        v_card.id, coalesce(v_card.number, p_caller), coalesce(p_caller, ''),
        v_card.id IS NOT NULL AND v_hash = v_card.pin_hash, p_client);
END;
$$;
