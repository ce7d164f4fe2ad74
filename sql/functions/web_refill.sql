-- The logged-in card holder refills the card from a recharge voucher
-- (kondge_billing/store/portal.py: refill): the operators' refill itself
-- (op_refill.sql: a voucher's value moves once, five wrong PINs in a row
-- suspend the voucher, one audit record naming 'web portal' and the
-- kondge_web role). A voucher PIN that is wrong, or a voucher number that
-- is none, also counts against the web client's address like a wrong card
-- PIN (web_login.sql), so one client cannot try voucher after voucher;
-- while the address is locked, refills from it are refused
-- ('client-locked') before the voucher is looked at.
-- Outcomes: op_refill's, 'no-session', 'client-locked'.
CREATE OR REPLACE FUNCTION kondge.web_refill(p_token text, p_client text, p_voucher text,
                                             p_pin_hash text)
RETURNS TABLE (outcome text, amount numeric, currency text, balance numeric,
               refused_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
DECLARE
    v_card_id bigint := kondge.web_session_card(p_token);
    v_policy  kondge.pin_policy;
    v_number  text;
    v_until   timestamptz;
    v_out     record;
BEGIN
    IF v_card_id IS NULL THEN
        RETURN QUERY SELECT 'no-session'::text, NULL::numeric, NULL::text, NULL::numeric,
                            NULL::timestamptz;
        RETURN;
    END IF;
    SELECT g.locked_until INTO v_until FROM kondge.pin_guard g
     WHERE g.scope = 'web' AND g.key = p_client AND g.locked_until > now();
    IF v_until IS NOT NULL THEN
        RETURN QUERY SELECT 'client-locked'::text, NULL::numeric, NULL::text, NULL::numeric,
                            v_until;
        RETURN;
    END IF;
    SELECT c.number INTO v_number FROM kondge.card c WHERE c.id = v_card_id;
    SELECT * INTO v_out FROM kondge.op_refill('web portal', v_number, p_voucher, p_pin_hash);
    IF v_out.outcome IN ('wrong-pin', 'no-voucher') THEN
        SELECT * INTO v_policy FROM kondge.pin_policy;
        IF v_policy.caller_tries > 0 AND p_client IS NOT NULL THEN
            PERFORM kondge.pin_count(p_client, 'web', v_policy.caller_tries,
                                     v_policy.caller_window, NULL, NULL);
        END IF;
    END IF;
    RETURN QUERY SELECT v_out.outcome, v_out.amount, v_out.card_currency, v_out.balance,
                        NULL::timestamptz;
END;
$$;
