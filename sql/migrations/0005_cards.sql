-- Cards as a product: batches, serials, vouchers, audit, validity, reports.
--
-- A batch is one issuance run of one category. Every printed piece (a
-- calling card or a recharge voucher) has a serial from one sequence, so a
-- printer's sheet names each piece once. A category of kind 'voucher' issues
-- recharge vouchers: they are not calling cards (the call path never sees
-- them); their value moves to a calling card once (kondge cards refill).
SET search_path = kondge, public;

ALTER TABLE category ADD COLUMN kind text NOT NULL DEFAULT 'card'
    CHECK (kind IN ('card', 'voucher'));
COMMENT ON COLUMN category.kind IS
    'card: calling cards; voucher: recharge vouchers whose value refills a calling card once';

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
-- suspended card (code 7) until it is activated.
ALTER TABLE card DROP CONSTRAINT card_status_check;
ALTER TABLE card ADD CONSTRAINT card_status_check
    CHECK (status IN ('inactive', 'active', 'suspended', 'cancelled'));
ALTER TABLE card ADD COLUMN batch_id integer REFERENCES batch;
ALTER TABLE card ADD COLUMN serial bigint NOT NULL UNIQUE DEFAULT nextval('serial_number');
ALTER TABLE card ADD COLUMN activated_at timestamptz;
UPDATE card SET activated_at = created_at WHERE status = 'active';
CREATE INDEX card_batch ON card (batch_id);
CREATE INDEX card_expiring ON card (expires_at) WHERE balance > 0;

CREATE TABLE voucher (
    id          bigserial PRIMARY KEY,
    number      text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4,20}$'),
    serial      bigint NOT NULL UNIQUE DEFAULT nextval('serial_number'),
    pin_hash    text NOT NULL,
    value       numeric NOT NULL CHECK (value > 0),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    category    text NOT NULL REFERENCES category (name),
    batch_id    integer REFERENCES batch,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('inactive', 'active', 'suspended', 'cancelled', 'used')),
    expires_at  timestamptz,
    used_at     timestamptz,
    used_by     bigint REFERENCES card,
    activated_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'used') = (used_at IS NOT NULL AND used_by IS NOT NULL))
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

-- Validity that starts on first use: the first call charged to a card
-- (a ledger entry of kind 'call') sets first_used_at, and for a category
-- with validity 'after-first-use' the expiry valid_days later.
CREATE FUNCTION card_first_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kondge.card c
       SET first_used_at = NEW.created_at,
           expires_at = CASE WHEN cat.validity = 'after-first-use'
                             THEN NEW.created_at + make_interval(days => cat.valid_days)
                             ELSE c.expires_at END
      FROM kondge.category cat
     WHERE c.id = NEW.card_id AND cat.name = c.category AND c.first_used_at IS NULL;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_entry_first_use AFTER INSERT ON ledger_entry
    FOR EACH ROW WHEN (NEW.kind = 'call') EXECUTE FUNCTION card_first_use();

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
