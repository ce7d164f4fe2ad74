-- The card a web portal session proves (the web_* functions call it first),
-- or NULL: no such token, or its session ended. A session ends 15 minutes
-- after its last use and 12 hours after its login, whichever comes first.
-- A use moves the idle end on only when the last one is a minute old or
-- more, so that a page view is a read (no WAL, no commit to wait for) and
-- costs the call path's commits nothing: an idle session may so end up to
-- a minute early. Only the token's SHA-256 is stored, so a copy of the
-- table logs nobody in.
CREATE OR REPLACE FUNCTION kondge.web_session_card(p_token text)
RETURNS bigint
LANGUAGE plpgsql SET search_path = kondge, public AS $$
DECLARE
    v_hash    text := encode(sha256(convert_to(coalesce(p_token, ''), 'UTF8')), 'hex');
    v_session record;
BEGIN
    SELECT s.card_id, s.last_seen INTO v_session FROM kondge.web_session s
     WHERE s.token_hash = v_hash AND s.expires_at > now();
    IF v_session.card_id IS NOT NULL AND v_session.last_seen < now() - interval '1 minute' THEN
        UPDATE kondge.web_session s
           SET last_seen = now(),
               expires_at = least(s.created_at + interval '12 hours',
                                  now() + interval '15 minutes')
         WHERE s.token_hash = v_hash;
    END IF;
    RETURN v_session.card_id;
END;
$$;
