-- The card holders' web portal (kondge_billing/web, docs/portal.md).
--
-- A card holder logs in with the card's number (or a caller number bound
-- to it) and PIN; sql/functions/web_login.sql checks the PIN against the
-- same counters as the call path (a card number's wrong PINs in a row and
-- its lock are one, whichever way the guesses come) and, on success,
-- issues a session: a random token the database makes, of which it keeps
-- only the SHA-256. Every other web_* function takes that token as its
-- proof and answers for the one card it names. The web process's role,
-- kondge_web, runs those functions and nothing else (sql/grants.sql).
SET search_path = kondge, public;

CREATE TABLE web_session (
    token_hash   text PRIMARY KEY,            -- sha256 of the token, hex
    card_id      bigint NOT NULL REFERENCES card ON DELETE CASCADE,
    client       text NOT NULL,               -- the address it logged in from
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    -- idle sessions end (web_login.sql: web_session_card), and every session
    -- ends this long after its login, whatever its use
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_session_card ON web_session (card_id);
CREATE INDEX web_session_expiry ON web_session (expires_at);
COMMENT ON TABLE web_session IS
    'logged-in web portal sessions; only the SHA-256 of a token is kept (sql/functions/web_login.sql)';

-- A web client's address is counted like a caller number (the caller
-- limits: KONDGE_PIN_CALLER_TRIES within KONDGE_PIN_CALLER_WINDOW), under
-- a scope of its own, so that it never shares a count with a phone number.
ALTER TABLE pin_guard DROP CONSTRAINT pin_guard_scope_check;
ALTER TABLE pin_guard ADD CONSTRAINT pin_guard_scope_check
    CHECK (scope IN ('card', 'caller', 'gateway', 'web'));

-- The call path's CDR listing per card, newest first, by time.
CREATE INDEX cdr_card_time ON cdr (card_id, (coalesce(connect_time, created_at)));
