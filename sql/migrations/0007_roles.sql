-- Least privilege: what each role may do (roles are made by the set-up,
-- `kondge server start`, before migrations run; sql/grants.sql grants).
--
--   kondge           owns the schema: migrations, tariffs, gateways (admin)
--   kondge_operator  issues and changes cards, reads reports
--   kondge_radius    the call path only: the radius_* functions below and
--                    record_leg / radius_hold; it reads no table, so it
--                    can neither read PIN hashes nor change a tariff
--
-- The functions are SECURITY DEFINER (they run with the owner's rights)
-- with a fixed search_path, and each answers for one call only. The call
-- path's are PL/pgSQL, whose plans are cached per connection: a SQL
-- function returning a table is planned again on every call (measured with
-- make bench-profile: radius_card 1.66 ms a call as SQL).
SET search_path = kondge, public;

-- The card for a call, by number (with its PIN checked here: the caller
-- passes the keyed hash of the PIN it was given, and gets back only whether
-- it matches) or by the caller number bound to it.
CREATE FUNCTION radius_card(
    p_number text, p_pin_hash text, p_caller_number text, p_called text, p_caller text,
    p_gateway_id integer, p_conf_id text, p_call_id text, p_at timestamptz
) RETURNS TABLE (
    id bigint, number text, pin_ok boolean, balance numeric, currency char(3), status text,
    expires_at timestamptz, language text, billing text, credit_limit numeric,
    max_calls integer, max_call_seconds integer, auto_bind boolean, max_callers integer,
    held numeric, active_calls bigint, called_is_access_number boolean, access_number text,
    access_login text, access_language text, access_prompt_id integer,
    callers_bound bigint, caller_card_id bigint, rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
SELECT c.id, c.number, c.pin_hash = p_pin_hash, c.balance, c.currency, c.status,
       c.expires_at, c.language,
       cat.billing, cat.credit_limit, cat.max_calls, cat.max_call_seconds,
       cat.auto_bind, cat.max_callers,
       coalesce(h.held, 0), coalesce(h.active_calls, 0),
       x.called_is_access_number, x.access_number,
       coalesce(acc.login, 'both'), acc.language, acc.prompt_id,
       (SELECT count(*) FROM kondge.caller b WHERE b.card_id = c.id),
       (SELECT b.card_id FROM kondge.caller b WHERE b.number = p_caller_number),
       CASE WHEN NOT x.called_is_access_number THEN kondge.rating_context(
           c.category, p_called, p_caller, x.access_number,
           p_gateway_id, p_at, c.tariff_id)::text END
  FROM kondge.card c
  JOIN kondge.category cat ON cat.name = c.category
  CROSS JOIN LATERAL (
        SELECT a.number IS NOT NULL AS called_is_access_number,
               coalesce(a.number,
                        (SELECT l.called FROM kondge.call_leg l
                          WHERE l.gateway_id = p_gateway_id AND l.call_id = p_conf_id
                            AND l.leg = 'answer')) AS access_number
          FROM (SELECT 1) one
          LEFT JOIN kondge.access_number a ON a.number = p_called) x
  LEFT JOIN kondge.access_number acc ON acc.number = x.access_number
  LEFT JOIN LATERAL (
        SELECT sum(r.amount) AS held, count(*) AS active_calls
          FROM kondge.v_active_reservation r
         WHERE r.card_id = c.id
           AND NOT (r.gateway_id = p_gateway_id AND r.call_id = p_call_id)) h ON true
 WHERE (p_number IS NOT NULL AND c.number = p_number)
    OR (p_number IS NULL
        AND c.id = (SELECT b.card_id FROM kondge.caller b WHERE b.number = p_caller_number));
END;
$$;

-- The rating of a stopped call: the card named by the billed leg (or, if
-- that leg carries none, by the other leg of the same call) and the rating
-- context of the destination under the card's tariff at the call's start,
-- with the incoming leg's number as the access number.
CREATE FUNCTION radius_rate_for_stop(
    p_number text, p_gateway_id integer, p_call_id text, p_destination text,
    p_caller text, p_at timestamptz
) RETURNS TABLE (number text, currency char(3), rating text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH card_number AS (
    SELECT coalesce(p_number,
                    (SELECT user_name FROM kondge.call_leg
                      WHERE gateway_id = p_gateway_id AND call_id = p_call_id
                        AND user_name ~ '^[0-9]{4,20}$' LIMIT 1)) AS number)
SELECT n.number, c.currency,
       CASE WHEN c.id IS NOT NULL THEN kondge.rating_context(
           c.category, p_destination, p_caller,
           (SELECT l.called FROM kondge.call_leg l
             WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
               AND l.leg = 'answer'),
           p_gateway_id, p_at, c.tariff_id)::text END
  FROM card_number n
  LEFT JOIN kondge.card c ON c.number = n.number;
END;
$$;

-- The gateways as the hook needs them: no secrets (FreeRADIUS has those).
CREATE FUNCTION radius_gateways()
RETURNS TABLE (id integer, name text, address text, dialect text, message_authenticator text,
               billed_leg text, prepaid_billing_model smallint, country_code text,
               international_prefix text, national_prefix text, language_map jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = kondge, public AS $$
SELECT id, name, host(address), dialect, message_authenticator, billed_leg,
       prepaid_billing_model, country_code, international_prefix, national_prefix,
       language_map
  FROM kondge.gateway WHERE removed_at IS NULL ORDER BY name;
$$;

-- Keep an accounting record the hook could not process.
CREATE FUNCTION radius_park(p_pairs jsonb, p_error text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
INSERT INTO kondge.unprocessed_record (pairs, error) VALUES (p_pairs, p_error);
$$;

-- Bind a caller number to a card after a card login (category auto_bind):
-- only if the number is free and the card below its category's maximum.
CREATE FUNCTION radius_auto_bind(p_card_id bigint, p_caller_number text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
BEGIN
    PERFORM 1 FROM kondge.card WHERE id = p_card_id FOR UPDATE;
    IF NOT (SELECT cat.auto_bind AND (SELECT count(*) FROM kondge.caller WHERE card_id = p_card_id)
                   < cat.max_callers
              FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
             WHERE c.id = p_card_id) THEN
        RETURN false;
    END IF;
    INSERT INTO kondge.caller (number, card_id, auto_bound) VALUES (p_caller_number, p_card_id, true)
    ON CONFLICT (number) DO NOTHING;
    RETURN FOUND;
END;
$$;

ALTER FUNCTION radius_hold(bigint, integer, text, text, text, numeric, integer, integer)
    SECURITY DEFINER SET search_path = kondge, public;
ALTER FUNCTION record_leg(text, integer, text, text, text, text, text, text, timestamptz,
                          timestamptz, timestamptz, integer, text, text[], boolean, text, text,
                          numeric, text, integer, text, numeric)
    SECURITY DEFINER SET search_path = kondge, public;
