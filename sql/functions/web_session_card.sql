-- The card a web portal session proves (the web_* functions call it first),
-- or NULL: no such token, or its session ended. A session ends
-- WEB_IDLE (15 minutes) after its last use and WEB_LIFE (12 hours) after
-- its login, whichever comes first; each use moves the idle end on. Only
-- the token's SHA-256 is stored, so a copy of the table logs nobody in.
CREATE OR REPLACE FUNCTION kondge.web_session_card(p_token text)
RETURNS bigint
LANGUAGE sql SET search_path = kondge, public AS $$
    UPDATE kondge.web_session s
       SET last_seen = now(),
           expires_at = least(s.created_at + interval '12 hours', now() + interval '15 minutes')
     WHERE s.token_hash = encode(sha256(convert_to(coalesce(p_token, ''), 'UTF8')), 'hex')
       AND s.expires_at > now()
    RETURNING s.card_id;
$$;
