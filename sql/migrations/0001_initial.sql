-- Kondge billing: the initial schema.
-- Money is NUMERIC, never float. Every balance change is a ledger entry with
-- a unique key; card.balance is a cache that v_balance_mismatch proves.

CREATE SCHEMA IF NOT EXISTS kondge;
SET search_path = kondge, public;

-- Gateways are RADIUS clients: FreeRADIUS's client list is rendered from here.
CREATE TABLE gateway (
    id                    serial PRIMARY KEY,
    name                  text NOT NULL
                          CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    address               inet NOT NULL CHECK (masklen(address) = 32 OR family(address) = 6),
    secret                text NOT NULL
                          CHECK (secret ~ '^[!#-\[\]-~]{1,128}$'),   -- printable, no quote or backslash
    dialect               text NOT NULL CHECK (dialect IN ('cisco', 'quintum', 'generic')),
    message_authenticator text NOT NULL DEFAULT 'optional'
                          CHECK (message_authenticator IN ('required', 'optional')),
    -- which accounting leg is charged: the outgoing one on Cisco's debit-card
    -- set-up; 'answer' where the leg towards the caller is the VoIP one.
    billed_leg            text NOT NULL DEFAULT 'originate'
                          CHECK (billed_leg IN ('originate', 'answer')),
    -- h323-billing-model value meaning "debit/prepaid" for this gateway.
    prepaid_billing_model smallint NOT NULL DEFAULT 1 CHECK (prepaid_billing_model IN (0, 1)),
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- a removed gateway keeps its row: its call records refer to it
    removed_at            timestamptz
);
CREATE UNIQUE INDEX gateway_name ON gateway (name) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX gateway_address ON gateway (address) WHERE removed_at IS NULL;

-- Access numbers (DNIS) the gateways' IVRs answer on. A stage-1 request
-- (card login, balance query) carries one of these in Called-Station-Id.
CREATE TABLE access_number (
    number      text PRIMARY KEY CHECK (number ~ '^[0-9]{1,32}$'),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE tariff (
    id             serial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    currency       char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    decimals       smallint NOT NULL DEFAULT 4 CHECK (decimals BETWEEN 0 AND 8),
    rounding       text NOT NULL DEFAULT 'up' CHECK (rounding IN ('up', 'half-up', 'down')),
    connect_charge numeric NOT NULL DEFAULT 0 CHECK (connect_charge >= 0),
    initial_block  integer NOT NULL DEFAULT 60 CHECK (initial_block > 0),
    increment      integer NOT NULL DEFAULT 6 CHECK (increment > 0),
    is_default     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tariff_one_default ON tariff (is_default) WHERE is_default;

CREATE TABLE rate (
    tariff_id        integer NOT NULL REFERENCES tariff ON DELETE CASCADE,
    prefix           text NOT NULL CHECK (prefix ~ '^[0-9]{1,32}$'),
    price_per_minute numeric NOT NULL CHECK (price_per_minute >= 0),
    PRIMARY KEY (tariff_id, prefix)
);

CREATE TABLE card (
    id         bigserial PRIMARY KEY,
    number     text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4,20}$'),
    pin_hash   text NOT NULL,
    balance    numeric NOT NULL DEFAULT 0,
    currency   char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status     text NOT NULL DEFAULT 'active'
               CHECK (status IN ('active', 'suspended', 'cancelled')),
    expires_at timestamptz,
    category   text NOT NULL DEFAULT 'standard',
    language   text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    tariff_id  integer REFERENCES tariff,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entry (
    id            bigserial PRIMARY KEY,
    card_id       bigint NOT NULL REFERENCES card,
    amount        numeric NOT NULL,           -- > 0 credits the card, < 0 debits it
    kind          text NOT NULL
                  CHECK (kind IN ('issue', 'refill', 'call', 'refund', 'adjustment', 'expiry')),
    key           text NOT NULL UNIQUE,       -- what makes the movement unique
    balance_after numeric NOT NULL,
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entry_card ON ledger_entry (card_id, id);

-- One row per accounting leg (a Cisco call has two legs sharing h323-conf-id).
CREATE TABLE call_leg (
    id                bigserial PRIMARY KEY,
    gateway_id        integer NOT NULL REFERENCES gateway,
    call_id           text NOT NULL,          -- h323-conf-id, or Acct-Session-Id (generic)
    leg               text NOT NULL,          -- answer | originate | session
    acct_session_id   text,
    user_name         text,
    caller            text,
    called            text,
    setup_time        timestamptz,
    connect_time      timestamptz,
    disconnect_time   timestamptz,
    session_time      integer,
    disconnect_cause  text,
    start_received_at timestamptz,
    stop_received_at  timestamptz,
    flags             text[] NOT NULL DEFAULT '{}',
    UNIQUE (gateway_id, call_id, leg)
);

-- One call detail record per call, written when its billed leg stops.
CREATE TABLE cdr (
    id               bigserial PRIMARY KEY,
    gateway_id       integer NOT NULL REFERENCES gateway,
    call_id          text NOT NULL,
    card_id          bigint REFERENCES card,
    card_number      text,
    caller           text,
    destination      text,
    connect_time     timestamptz,
    disconnect_time  timestamptz,
    duration         integer NOT NULL CHECK (duration >= 0),
    disconnect_cause text,
    tariff_id        integer REFERENCES tariff,
    rate_prefix      text,
    price_per_minute numeric,
    cost             numeric NOT NULL DEFAULT 0,   -- what the call is worth by the tariff
    charge           numeric NOT NULL DEFAULT 0,   -- what was debited (= ledger entry)
    uncollected      numeric NOT NULL DEFAULT 0,   -- cost - charge when the balance ran short
    currency         char(3),
    flags            text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, call_id)
);
CREATE INDEX cdr_card ON cdr (card_id, id);

-- Reconciliation: every card whose cached balance differs from its ledger.
-- It must always be empty.
CREATE VIEW v_balance_mismatch AS
SELECT c.id, c.number, c.balance, coalesce(sum(l.amount), 0) AS ledger_sum
  FROM card c LEFT JOIN ledger_entry l ON l.card_id = c.id
 GROUP BY c.id
HAVING c.balance <> coalesce(sum(l.amount), 0);

-- kondge.record_leg(), which records accounting, is defined in 0004_live_calls.sql.
