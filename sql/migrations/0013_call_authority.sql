-- The call's authorisation decides who pays, for what and at which price.
--
-- A hold (reservation) is the authorisation stage 2 gave: the card, the
-- destination, the number the caller came in on and the price (tariff
-- version, plan, destination) are stored in it, and the accounting of the
-- call is billed by it, whatever the accounting says (what disagrees is
-- flagged on the CDR). A call is known by its key (call_key): the gateway's
-- call identity (h323-conf-id, or a made-up 'auth:…' when the request had
-- none), with '#n' added when that identity already belongs to an earlier
-- call (a Quintum follow-on call, a gateway that reuses ids). The billed
-- leg's accounting claims its hold with its Acct-Session-Id.
--
-- A hold's call slot counts until hold_expires_at; its money until
-- hold_expires_at + granted_seconds (a call that connects just before the
-- hold expires may still talk its whole time). An unstarted hold past that
-- lapses (it reserves nothing) but stays, so that a very late Start still
-- finds the call's authorisation.
SET search_path = kondge, public;

-- The functions of migrations 0001-0011 (a database that had them applied
-- has them); the live ones are in sql/functions/.
DROP FUNCTION IF EXISTS record_leg(text, integer, text, text, text, text, text, text,
    timestamptz, timestamptz, timestamptz, integer, text, text[], boolean, text, text,
    numeric, text, integer, text, numeric);
DROP FUNCTION IF EXISTS correct_swept_call(integer, text, text, timestamptz, integer, text,
                                           numeric);
DROP FUNCTION IF EXISTS find_reservation(integer, text, text);
DROP FUNCTION IF EXISTS radius_hold(bigint, integer, text, text, text, numeric, integer, integer);
DROP FUNCTION IF EXISTS radius_rate_for_stop(text, integer, text, text, text, timestamptz);
DROP FUNCTION IF EXISTS radius_gateways();
DROP FUNCTION IF EXISTS radius_card(text, text, text, text, text, integer, text, text,
                                    timestamptz);
DROP FUNCTION IF EXISTS card_first_use() CASCADE;
DROP FUNCTION IF EXISTS kept_for_calls() CASCADE;
DROP FUNCTION IF EXISTS voucher_reactivated() CASCADE;
DROP FUNCTION IF EXISTS gateway_new_revision() CASCADE;

-- A category may name the tariff of its cards (a card's own tariff wins;
-- without either, the default tariff).
ALTER TABLE category ADD COLUMN IF NOT EXISTS tariff_id integer REFERENCES tariff;

-- What the accounting Start means for a gateway's call: 'setup' (Cisco and
-- Quintum send it when the leg is set up, before the call is answered) or
-- 'answer' (the call was answered: the time from Start to Stop is talk
-- time). NULL: the dialect's default (setup for cisco and quintum, answer
-- for generic).
ALTER TABLE gateway ADD COLUMN accounting_start text
    CHECK (accounting_start IN ('setup', 'answer'));

-- Stage 1's facts about a call, for its stage 2 and its CDR: the number
-- the caller came in on. Written once per call (a balance query again
-- changes nothing); the sweep forgets rows older than a day.
CREATE TABLE call_login (
    gateway_id    integer NOT NULL,
    call_id       text NOT NULL,
    access_number text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, call_id)
);

-- Holds: the authorisation of a call.
DROP VIEW v_active_reservation;
ALTER TABLE reservation DROP CONSTRAINT reservation_gateway_id_call_id_key;
ALTER TABLE reservation DROP CONSTRAINT reservation_state_check;
ALTER TABLE reservation
    ADD COLUMN call_key text,
    ADD COLUMN acct_session_id text,       -- the billed leg that claimed it
    ADD COLUMN access_number text,
    ADD COLUMN category text,
    ADD COLUMN tariff_version_id integer,
    ADD COLUMN plan_id integer,
    ADD COLUMN destination_id integer,
    ADD COLUMN rate_prefix text,
    ADD COLUMN currency char(3),
    ADD COLUMN start_received_at timestamptz,
    ADD CONSTRAINT reservation_state_check CHECK (state IN ('held', 'live', 'lapsed'));
UPDATE reservation SET call_key = call_id;
ALTER TABLE reservation ALTER COLUMN call_key SET NOT NULL;
ALTER TABLE reservation ADD CONSTRAINT reservation_call_key UNIQUE (gateway_id, call_key);
CREATE INDEX reservation_call_id ON reservation (gateway_id, call_id);

-- What still counts against a card: a live call's hold, and an unstarted
-- hold's money until its call could no longer be running.
CREATE VIEW v_active_reservation AS
SELECT * FROM reservation
 WHERE state = 'live'
    OR (state = 'held' AND hold_expires_at + make_interval(secs => granted_seconds) > now());

-- Legs belong to a call (call_key); a leg is one Acct-Session-Id of one
-- origin. stop_digest: what the stored Stop said (a retransmission says
-- the same; a different Stop under the same ids is another call).
ALTER TABLE call_leg DROP CONSTRAINT call_leg_gateway_id_call_id_leg_key;
ALTER TABLE call_leg ADD COLUMN call_key text, ADD COLUMN stop_digest text;
UPDATE call_leg SET call_key = call_id, acct_session_id = coalesce(acct_session_id, '');
ALTER TABLE call_leg ALTER COLUMN call_key SET NOT NULL,
                     ALTER COLUMN acct_session_id SET NOT NULL,
                     ALTER COLUMN acct_session_id SET DEFAULT '';
ALTER TABLE call_leg ADD CONSTRAINT call_leg_identity
    UNIQUE (gateway_id, call_id, leg, acct_session_id, call_key);

-- CDRs: keyed by the call, naming what priced it. Integrity checked on
-- insert: the gateway, the card and the tariff version a CDR names exist.
ALTER TABLE cdr DROP CONSTRAINT cdr_gateway_id_call_id_key;
ALTER TABLE cdr RENAME COLUMN tariff_id TO tariff_version_id;
COMMENT ON COLUMN cdr.tariff_version_id IS 'the tariff version that priced the call';
ALTER TABLE cdr
    ADD COLUMN call_key text,
    ADD COLUMN leg text,                      -- the leg billed
    ADD COLUMN acct_session_id text,
    ADD COLUMN access_number text,
    ADD COLUMN category text,
    ADD COLUMN plan_id integer,
    ADD COLUMN destination_id integer,
    ADD COLUMN session_time integer,          -- what the gateway reported (NULL: nothing usable)
    ADD COLUMN granted_seconds integer,       -- what the authorisation allowed
    ADD COLUMN authorised_at timestamptz;
UPDATE cdr SET call_key = call_id, session_time = duration;
ALTER TABLE cdr ALTER COLUMN call_key SET NOT NULL;
ALTER TABLE cdr ADD CONSTRAINT cdr_call_key UNIQUE (gateway_id, call_key);
ALTER TABLE cdr ADD CONSTRAINT cdr_cost_check CHECK (cost >= 0),
                ADD CONSTRAINT cdr_charge_check CHECK (charge >= 0 AND charge <= cost);
ALTER TABLE cdr ADD CONSTRAINT cdr_gateway_id_fkey FOREIGN KEY (gateway_id) REFERENCES gateway,
                ADD CONSTRAINT cdr_tariff_version_id_fkey
                    FOREIGN KEY (tariff_version_id) REFERENCES tariff_version;
CREATE INDEX cdr_flagged ON cdr (id) WHERE flags <> '{}';
