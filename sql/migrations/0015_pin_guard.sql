-- PIN guessing: wrong PINs are counted per card number, per caller number
-- and per gateway, and past a limit the call path answers code 10 (retries
-- exceeded) without checking the PIN (sql/functions/radius_card.sql,
-- pin_failed.sql). The counters are written on failure only; the success
-- path reads the card's with the card and looks for caller and gateway
-- locks only while one may be in force.
--
-- And the call path's functions hand out only what was proven: a card's
-- data needs its PIN (or a caller number bound to it); a hold or a caller
-- binding needs a login of that card on that gateway and call, which only
-- radius_card writes, after the proof (call_login.card_id).
SET search_path = kondge, public;

-- A card's wrong PINs in a row (the right PIN forgives them) and its lock,
-- on its own row, which radius_card reads anyway: the success path learns
-- them for nothing. Written on failure only (and by the right PIN after
-- failures, or `kondge cards unlock`). Each lock in a row lasts twice as
-- long as the one before (pin_locks); 'infinity': until `kondge cards unlock`.
ALTER TABLE card
    ADD COLUMN pin_failures integer NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    ADD COLUMN pin_locks integer NOT NULL DEFAULT 0 CHECK (pin_locks >= 0),
    ADD COLUMN pin_locked_until timestamptz;

-- The other counted keys, one row each, written on failure only:
--   card:    a number that is no card, counted and locked as a card would
--            be, so that a lock tells nobody which numbers are cards;
--   caller:  a caller number (international form); wrong PINs and unknown
--            card numbers within its window;
--   gateway: a gateway's id; the same, within the gateway's window.
CREATE TABLE pin_guard (
    scope        text NOT NULL CHECK (scope IN ('card', 'caller', 'gateway')),
    key          text NOT NULL,
    failures     integer NOT NULL CHECK (failures >= 0),
    window_start timestamptz NOT NULL,       -- the first failure counted in `failures`
    last_failure timestamptz NOT NULL,
    locks        integer NOT NULL DEFAULT 0 CHECK (locks >= 0),   -- card: locks in a row
    locked_until timestamptz,
    PRIMARY KEY (scope, key)
);
COMMENT ON TABLE pin_guard IS
    'wrong PINs per caller number, gateway and number that is no card; a key past its limit '
    'is refused with code 10 until locked_until (sql/functions/pin_failed.sql)';

-- The limits, one row. `kondge server start` writes the KONDGE_PIN_* settings
-- here (kondge_billing/calls/pin_guard.py), so that the limits are the database's
-- and no caller of the call path's functions can pass its own. locks_until
-- is state, not a setting: the end of the latest caller or gateway lock;
-- while it is past, the success path need not look for one.
CREATE TABLE pin_policy (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    card_tries     integer NOT NULL DEFAULT 5 CHECK (card_tries >= 0),
    card_cooldown  integer NOT NULL DEFAULT 900 CHECK (card_cooldown >= 0),
    caller_tries   integer NOT NULL DEFAULT 10 CHECK (caller_tries >= 0),
    caller_window  integer NOT NULL DEFAULT 3600 CHECK (caller_window > 0),
    gateway_tries  integer NOT NULL DEFAULT 100 CHECK (gateway_tries >= 0),
    gateway_window integer NOT NULL DEFAULT 600 CHECK (gateway_window > 0),
    locks_until    timestamptz
);
COMMENT ON TABLE pin_policy IS
    'the KONDGE_PIN_* settings the service started with (0 tries: no limit; '
    'card_cooldown 0: a card stays locked until kondge cards unlock)';
INSERT INTO pin_policy DEFAULT VALUES;

-- The login of a call names the card it proved (a hold and a caller
-- binding check it); a login written by stage 2 may have no access number.
ALTER TABLE call_login
    ADD COLUMN card_id bigint,
    ALTER COLUMN access_number DROP NOT NULL;

-- Their results or arguments change (sql/functions/radius_card.sql,
-- radius_auto_bind.sql); a new database has none yet.
DROP FUNCTION IF EXISTS radius_card(text, text, text, text, text, integer, text, text, text, timestamptz);
DROP FUNCTION IF EXISTS radius_auto_bind(bigint, text);
