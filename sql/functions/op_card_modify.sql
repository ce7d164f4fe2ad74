-- An operator changes one card's language, expiry or own tariff (kondge
-- cards modify): p_changes holds only the fields to change ("expires_at":
-- null, never expires; "tariff": null, none of its own, so its category's
-- or the default rates it); its tariff prices in its currency. Balance,
-- status, category and PIN have commands of their own. One audit record
-- with each field's old and new value.
CREATE OR REPLACE FUNCTION kondge.op_card_modify(p_operator text, p_card text, p_changes jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_old     record;
    v_new     record;
    v_unknown text;
BEGIN
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(p_changes) k
     WHERE k NOT IN ('language', 'expires_at', 'tariff');
    IF v_unknown IS NOT NULL OR p_changes = '{}' THEN
        RAISE EXCEPTION 'a card changes language, expires_at or tariff here, not %',
                        coalesce(v_unknown, 'nothing') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.id, c.language, c.expires_at, t.name AS tariff, c.currency::text AS currency
      INTO v_old
      FROM kondge.card c LEFT JOIN kondge.tariff t ON t.id = c.tariff_id
     WHERE c.number = p_card FOR UPDATE OF c;
    IF v_old.id IS NULL THEN
        RAISE EXCEPTION 'no card %', p_card USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE kondge.card c
       SET language = CASE WHEN p_changes ? 'language' THEN p_changes->>'language'
                           ELSE c.language END,
           expires_at = CASE WHEN p_changes ? 'expires_at'
                             THEN (p_changes->>'expires_at')::timestamptz ELSE c.expires_at END,
           tariff_id = CASE WHEN p_changes ? 'tariff'
                            THEN kondge.tariff_in(p_changes->>'tariff', v_old.currency,
                                                  'card ' || p_card)
                            ELSE c.tariff_id END
     WHERE c.id = v_old.id;
    SELECT c.language, c.expires_at, t.name AS tariff INTO v_new
      FROM kondge.card c LEFT JOIN kondge.tariff t ON t.id = c.tariff_id WHERE c.id = v_old.id;
    PERFORM kondge.audit_record(p_operator, 'modify card', 1, jsonb_build_object('card', p_card),
        jsonb_build_object('changes', kondge.changes(
            jsonb_build_object('language', v_old.language, 'expires_at', v_old.expires_at,
                               'tariff', v_old.tariff),
            jsonb_build_object('language', v_new.language, 'expires_at', v_new.expires_at,
                               'tariff', v_new.tariff))));
END;
$$;
