-- Kondge billing: the schema as of migration 0011, in one file.
--
-- Migrations 0001 to 0011 built this schema step by step, and restated the
-- call path's functions several times on the way. They are folded into
-- this one file: a new database starts here; a database that had them all
-- applied has version 11 recorded and skips it (kondge_billing/store/migrate.py
-- refuses one that stopped half-way through them).
--
-- Migrations hold the schema only: tables, indexes, constraints, views and
-- data moves. Every function lives in sql/functions/, one file each,
-- applied after the migrations at every start.
--
-- Money is NUMERIC, never float. Every balance change is a ledger entry
-- with a unique key; card.balance is a cache that reports.reconciliation
-- proves.

CREATE SCHEMA IF NOT EXISTS kondge;
SET search_path = kondge, public;

-- Gateways are RADIUS clients: FreeRADIUS's client list is rendered from here.
-- A removed gateway keeps its row (removed_at): its call records name it.
-- Every change gets a new revision number: the servers serve the gateway
-- table at a revision, and `kondge gateways ...` waits until a running
-- server serves the revision it committed.
CREATE SEQUENCE gateway_revision;
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
    removed_at            timestamptz,
    -- How the gateway writes phone numbers, so that one number matches
    -- however it is sent: '+447911123456', '00447911123456' and
    -- '07911123456' from a UK gateway are all 447911123456.
    country_code          text NOT NULL DEFAULT '' CHECK (country_code ~ '^[0-9]{0,3}$'),
    international_prefix  text NOT NULL DEFAULT '00'
                          CHECK (international_prefix ~ '^[0-9]{0,4}$'),
    national_prefix       text NOT NULL DEFAULT '' CHECK (national_prefix ~ '^[0-9]{0,2}$'),
    -- our language codes -> what this gateway's IVR expects, e.g. {"zh": "ch"}
    language_map          jsonb NOT NULL DEFAULT '{}'::jsonb
                          CHECK (jsonb_typeof(language_map) = 'object'),
    revision              bigint NOT NULL DEFAULT nextval('gateway_revision')
);
CREATE UNIQUE INDEX gateway_name ON gateway (name) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX gateway_address ON gateway (address) WHERE removed_at IS NULL;

-- Access numbers (DNIS) the gateways' IVRs answer on. A stage-1 request
-- (card login, balance query) carries one of these in Called-Station-Id.
-- Each says which logins it takes, its prompt language and prompt id; a
-- number with no row gets the default policy (both logins, the card's
-- language).
CREATE TABLE access_number (
    number      text PRIMARY KEY CHECK (number ~ '^[0-9]{1,32}$'),
    description text NOT NULL DEFAULT '',
    login       text NOT NULL DEFAULT 'both' CHECK (login IN ('card', 'caller', 'both')),
    language    text CHECK (language ~ '^[a-z]{2,3}$'),
    prompt_id   integer CHECK (prompt_id >= 0)
);

-- A named tariff; its prices are in its versions (tariff_version).
CREATE TABLE tariff (
    id         serial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tariff_one_default ON tariff (is_default) WHERE is_default;
COMMENT ON TABLE tariff IS 'a named tariff; its prices are in its versions (tariff_version)';

-- Card categories (products): what a card is sold as. kind 'voucher' issues
-- recharge vouchers, whose value moves to a calling card once.
CREATE TABLE category (
    name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    description      text NOT NULL DEFAULT '',
    face_value       numeric NOT NULL DEFAULT 0 CHECK (face_value >= 0),
    currency         char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- validity: none; a fixed date; N days after first use; N days after issue
    validity         text NOT NULL DEFAULT 'none'
                     CHECK (validity IN ('none', 'fixed', 'after-first-use', 'after-issue')),
    valid_until      timestamptz,
    valid_days       integer CHECK (valid_days > 0),
    language         text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    max_calls        integer NOT NULL DEFAULT 1 CHECK (max_calls > 0),
    billing          text NOT NULL DEFAULT 'prepaid' CHECK (billing IN ('prepaid', 'postpaid')),
    credit_limit     numeric NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    pin_length       integer NOT NULL DEFAULT 4 CHECK (pin_length BETWEEN 4 AND 12),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- a cap on one call's length (null: the server's cap only)
    max_call_seconds integer CHECK (max_call_seconds > 0),
    kind             text NOT NULL DEFAULT 'card' CHECK (kind IN ('card', 'voucher')),
    -- bind a caller number by itself after a successful card login
    auto_bind        boolean NOT NULL DEFAULT false,
    max_callers      integer NOT NULL DEFAULT 3 CHECK (max_callers >= 0),
    CONSTRAINT category_check CHECK (validity <> 'fixed' OR valid_until IS NOT NULL),
    CONSTRAINT category_check1 CHECK (validity NOT IN ('after-first-use', 'after-issue')
                                      OR valid_days IS NOT NULL),
    CONSTRAINT category_check2 CHECK (billing = 'postpaid' OR credit_limit = 0)
);
COMMENT ON COLUMN category.kind IS
    'card: calling cards; voucher: recharge vouchers whose value refills a calling card once';
INSERT INTO category (name, description, max_calls)
VALUES ('standard', 'the default category', 1);

-- A batch is one issuance run of one category. Every printed piece (a
-- calling card or a recharge voucher) has a serial from one sequence.
CREATE TABLE batch (
    id         serial PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    category   text NOT NULL REFERENCES category (name),
    kind       text NOT NULL CHECK (kind IN ('card', 'voucher')),
    count      integer NOT NULL CHECK (count > 0),
    operator   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE serial_number START 100001;

-- 'inactive': issued, not yet sold; the call path refuses it like a
-- suspended card (code 7) until it is activated. The validity clock of an
-- after-first-use card starts with its first answered call (first_used_at).
CREATE TABLE card (
    id            bigserial PRIMARY KEY,
    number        text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4,20}$'),
    pin_hash      text NOT NULL,
    balance       numeric NOT NULL DEFAULT 0,
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('inactive', 'active', 'suspended', 'cancelled')),
    expires_at    timestamptz,
    category      text NOT NULL DEFAULT 'standard',
    language      text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    tariff_id     integer REFERENCES tariff,
    created_at    timestamptz NOT NULL DEFAULT now(),
    first_used_at timestamptz,
    batch_id      integer REFERENCES batch,
    serial        bigint NOT NULL UNIQUE DEFAULT nextval('serial_number'),
    activated_at  timestamptz,
    CONSTRAINT card_category FOREIGN KEY (category) REFERENCES category (name)
) WITH (fillfactor = 90);        -- room for HOT updates of the balance
CREATE INDEX card_batch ON card (batch_id);
-- on expires_at alone (not a partial index on the balance), so that a
-- balance change is a HOT update
CREATE INDEX card_expiring ON card (expires_at) WHERE expires_at IS NOT NULL;

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

-- A caller number (international form, digits only) logs in to its card
-- without a card number or PIN. One number belongs to at most one card.
CREATE TABLE caller (
    number     text PRIMARY KEY CHECK (number ~ '^[0-9]{4,32}$'),
    card_id    bigint NOT NULL REFERENCES card ON DELETE CASCADE,
    auto_bound boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX caller_card ON caller (card_id);

CREATE TABLE voucher (
    id              bigserial PRIMARY KEY,
    number          text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4,20}$'),
    serial          bigint NOT NULL UNIQUE DEFAULT nextval('serial_number'),
    pin_hash        text NOT NULL,
    value           numeric NOT NULL CHECK (value > 0),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    category        text NOT NULL REFERENCES category (name),
    batch_id        integer REFERENCES batch,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('inactive', 'active', 'suspended', 'cancelled', 'used')),
    expires_at      timestamptz,
    used_at         timestamptz,
    used_by         bigint REFERENCES card,
    activated_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- wrong PINs in a row; at five the voucher is suspended
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    CONSTRAINT voucher_check CHECK ((status = 'used') = (used_at IS NOT NULL AND used_by IS NOT NULL))
);
CREATE INDEX voucher_batch ON voucher (batch_id);

-- Who changed what, when, and how many cards it touched.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    operator  text NOT NULL,
    action    text NOT NULL,
    selection jsonb NOT NULL DEFAULT '{}',
    details   jsonb NOT NULL DEFAULT '{}',
    count     integer NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- --- tariffs: versioned YAML files (kondge tariffs load) -----------------------
-- A tariff has versions; a version applies from its valid_from on, until a
-- later one takes over. A version holds plans (chosen per call by category,
-- access number, gateway and caller prefix, with priorities), destinations
-- (named groups of prefixes) and, per plan and destination, a rate per time
-- band. Bands, holidays and discounts are the version's `rules` (jsonb,
-- read by the Python engine). Money in the jsonb documents is a string
-- (exact), never a JSON number.
CREATE TABLE tariff_version (
    id          serial PRIMARY KEY,
    tariff_id   integer NOT NULL REFERENCES tariff,
    version     integer NOT NULL CHECK (version > 0),
    valid_from  timestamptz NOT NULL,
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    decimals    smallint NOT NULL CHECK (decimals BETWEEN 0 AND 8),
    rounding    text NOT NULL CHECK (rounding IN ('up', 'half-up', 'down')),
    timezone    text NOT NULL,
    rules       jsonb NOT NULL,        -- {"timezone", "bands", "holidays", "discounts"}
    source      text NOT NULL,         -- the YAML file as loaded (diff and re-rating read it)
    source_name text NOT NULL DEFAULT '',
    sha256      text NOT NULL DEFAULT '',
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tariff_id, version)
);
CREATE INDEX tariff_version_in_force ON tariff_version (tariff_id, valid_from DESC, id DESC);

CREATE TABLE tariff_plan (
    id              serial PRIMARY KEY,
    version_id      integer NOT NULL REFERENCES tariff_version ON DELETE CASCADE,
    name            text NOT NULL,
    priority        integer NOT NULL,
    -- selectors; NULL matches every call
    categories      text[],
    access_prefixes text[],             -- prefixes of the access number dialled (DNIS)
    gateways        text[],             -- gateway names
    caller_prefixes text[],             -- prefixes of the caller's number (ANI)
    UNIQUE (version_id, name)
);

CREATE TABLE tariff_destination (
    id         serial PRIMARY KEY,
    version_id integer NOT NULL REFERENCES tariff_version ON DELETE CASCADE,
    name       text NOT NULL,
    UNIQUE (version_id, name)
);

-- The big one (a full international deck has about a million rows per
-- version). The longest-prefix look-up probes the primary key with every
-- prefix of the number dialled. No foreign keys: they would slow the COPY
-- of a deck; loads write it in the same transaction as its version.
CREATE TABLE tariff_prefix (
    version_id     integer NOT NULL,
    prefix         text NOT NULL CHECK (prefix ~ '^[0-9]{1,32}$'),
    destination_id integer NOT NULL,
    PRIMARY KEY (version_id, prefix)
);

CREATE TABLE tariff_rate (
    plan_id        integer NOT NULL REFERENCES tariff_plan ON DELETE CASCADE,
    destination_id integer NOT NULL REFERENCES tariff_destination ON DELETE CASCADE,
    band           text NOT NULL,       -- a band name, or '*' for every band
    -- {"connect": "0", "minimum": "0", "initial": 60,
    --  "steps": [{"start": 0, "per_minute": "0.15", "increment": 6}, ...]}
    rate           jsonb NOT NULL,
    PRIMARY KEY (plan_id, destination_id, band)
);

-- --- calls ----------------------------------------------------------------------
-- One row per accounting leg (a Cisco call has two legs sharing h323-conf-id).
CREATE TABLE call_leg (
    id                bigserial PRIMARY KEY,
    gateway_id        integer NOT NULL,
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

-- Stage 2 reserves the cost of the time it grants (a hold).
CREATE TABLE reservation (
    id              bigserial PRIMARY KEY,
    card_id         bigint NOT NULL REFERENCES card,
    gateway_id      integer NOT NULL,
    call_id         text NOT NULL,
    caller          text,
    destination     text,
    amount          numeric NOT NULL CHECK (amount >= 0),
    granted_seconds integer NOT NULL CHECK (granted_seconds >= 0),
    state           text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'live')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    hold_expires_at timestamptz NOT NULL,
    started_at      timestamptz,
    interim_seconds integer,
    interim_at      timestamptz,
    flags           text[] NOT NULL DEFAULT '{}',
    UNIQUE (gateway_id, call_id)
);
CREATE INDEX reservation_card ON reservation (card_id);

CREATE VIEW v_active_reservation AS
SELECT * FROM reservation WHERE state = 'live' OR hold_expires_at > now();

-- One call detail record per call, written when its billed leg stops.
CREATE TABLE cdr (
    id               bigserial PRIMARY KEY,
    gateway_id       integer NOT NULL,
    call_id          text NOT NULL,
    card_id          bigint REFERENCES card,
    card_number      text,
    caller           text,
    destination      text,
    connect_time     timestamptz,
    disconnect_time  timestamptz,
    duration         integer NOT NULL CHECK (duration >= 0),
    disconnect_cause text,
    tariff_id        integer,
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
COMMENT ON COLUMN cdr.tariff_id IS 'the tariff version (kondge.tariff_version) that rated the call';

-- Accounting records the hook could not process, kept whole.
CREATE TABLE unprocessed_record (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    pairs       jsonb NOT NULL,
    error       text NOT NULL
);

-- Every card whose cached balance differs from its ledger: always empty.
CREATE VIEW v_balance_mismatch AS
SELECT c.id, c.number, c.balance, coalesce(sum(l.amount), 0) AS ledger_sum
  FROM card c LEFT JOIN ledger_entry l ON l.card_id = c.id
 GROUP BY c.id
HAVING c.balance <> coalesce(sum(l.amount), 0);

-- --- reports: views for operators in psql (\dv reports.*, \d+ reports.NAME) ---
CREATE SCHEMA reports;

CREATE VIEW reports.daily_revenue AS
SELECT date_trunc('day', coalesce(d.connect_time, d.created_at))::date AS day,
       g.name AS gateway,
       coalesce(d.rate_prefix, '(none)') AS destination,
       coalesce(c.category, '(no card)') AS category,
       d.currency,
       count(*) AS calls,
       sum(d.duration) AS seconds,
       sum(d.charge) AS revenue,
       sum(d.uncollected) AS uncollected
  FROM kondge.cdr d
  JOIN kondge.gateway g ON g.id = d.gateway_id
  LEFT JOIN kondge.card c ON c.id = d.card_id
 GROUP BY 1, 2, 3, 4, 5;
COMMENT ON VIEW reports.daily_revenue IS
    'Revenue (what was debited) per day, gateway, destination prefix, card category and currency';

CREATE VIEW reports.asr_acd AS
SELECT date_trunc('day', coalesce(d.connect_time, d.created_at))::date AS day,
       g.name AS gateway,
       count(*) AS attempts,
       count(*) FILTER (WHERE d.duration > 0) AS answered,
       round(100.0 * count(*) FILTER (WHERE d.duration > 0) / count(*), 2) AS asr_percent,
       round(avg(d.duration) FILTER (WHERE d.duration > 0), 1) AS acd_seconds
  FROM kondge.cdr d JOIN kondge.gateway g ON g.id = d.gateway_id
 GROUP BY 1, 2;
COMMENT ON VIEW reports.asr_acd IS
    'Answer-seizure ratio (answered / attempts, %) and average call duration of answered calls, per day and gateway';

CREATE VIEW reports.top_destinations AS
SELECT coalesce(d.rate_prefix, '(none)') AS destination, d.currency,
       count(*) AS calls, sum(d.duration) AS seconds, sum(d.charge) AS revenue,
       rank() OVER (PARTITION BY d.currency ORDER BY sum(d.charge) DESC, count(*) DESC)
           AS rank
  FROM kondge.cdr d
 GROUP BY 1, 2;
COMMENT ON VIEW reports.top_destinations IS
    'Destination prefixes ranked by revenue within each currency (ORDER BY rank LIMIT 10)';

CREATE VIEW reports.balance_liability AS
SELECT c.currency, c.category,
       count(*) AS cards,
       sum(c.balance) FILTER (WHERE c.balance > 0) AS liability
  FROM kondge.card c
 WHERE c.status <> 'cancelled'
   AND (c.expires_at IS NULL OR c.expires_at > now())
 GROUP BY 1, 2;
COMMENT ON VIEW reports.balance_liability IS
    'Outstanding prepaid value the cards can still spend (not cancelled, not expired), per currency and category';

CREATE VIEW reports.reconciliation AS
SELECT c.id, c.number, c.balance, coalesce(sum(l.amount), 0) AS ledger_sum,
       c.balance - coalesce(sum(l.amount), 0) AS difference
  FROM kondge.card c LEFT JOIN kondge.ledger_entry l ON l.card_id = c.id
 GROUP BY c.id
HAVING c.balance <> coalesce(sum(l.amount), 0);
COMMENT ON VIEW reports.reconciliation IS
    'Every card whose balance differs from the sum of its ledger entries: always empty';
