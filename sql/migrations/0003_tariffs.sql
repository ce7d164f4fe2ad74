-- Tariffs as versioned YAML files (kondge tariffs load), replacing 0001's
-- single-rate tariff/rate tables.
--
-- A tariff (kondge.tariff, by name) has versions; a version applies from its
-- valid_from on, until a later one takes over. A version holds plans (chosen
-- per call by category, access number, gateway and caller prefix, with
-- priorities), destinations (named groups of prefixes) and, per plan and
-- destination, a rate per time band. Bands, holidays and discounts are the
-- version's `rules` (jsonb, read by the Python engine). Money in the jsonb
-- documents is a string (exact), never a JSON number.
--
-- kondge.rating_context() returns, in one query, everything the pure engine
-- (kondge_billing/tariffs/engine.py) needs to price one call.
SET search_path = kondge, public;

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

-- Every prefix of a number, longest first (at most 32 digits).
CREATE FUNCTION prefixes_of(p_number text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- PL/pgSQL, not SQL: called from rating_context on every rating, a SQL
-- function body would be planned again each time.
DECLARE
    v_result text[] := '{}';
BEGIN
    FOR n IN REVERSE least(length(p_number), 32) .. 1 LOOP
        v_result := v_result || left(p_number, n);
    END LOOP;
    RETURN v_result;
END;
$$;

-- Migrate 0001's tariffs: each becomes version 1 (valid since 2000), one plan
-- "default", one destination per rated prefix.
INSERT INTO tariff_version (tariff_id, version, valid_from, currency, decimals, rounding,
                            timezone, rules, source, source_name)
SELECT id, 1, '2000-01-01 00:00+00', currency, decimals, rounding, 'UTC',
       '{"timezone": "UTC", "bands": [], "holidays": [], "discounts": []}',
       '# migrated from the 0001 tariff table', 'migration 0003'
  FROM tariff;
INSERT INTO tariff_plan (version_id, name, priority)
SELECT id, 'default', 0 FROM tariff_version;
INSERT INTO tariff_destination (version_id, name)
SELECT v.id, 'prefix ' || r.prefix
  FROM rate r JOIN tariff_version v ON v.tariff_id = r.tariff_id;
INSERT INTO tariff_prefix (version_id, prefix, destination_id)
SELECT d.version_id, substr(d.name, 8), d.id FROM tariff_destination d;
INSERT INTO tariff_rate (plan_id, destination_id, band, rate)
SELECT p.id, d.id, '*',
       jsonb_build_object('connect', t.connect_charge::text, 'minimum', '0',
                          'initial', t.initial_block,
                          'steps', jsonb_build_array(jsonb_build_object(
                              'start', 0, 'per_minute', r.price_per_minute::text,
                              'increment', t.increment)))
  FROM rate r
  JOIN tariff t ON t.id = r.tariff_id
  JOIN tariff_version v ON v.tariff_id = t.id
  JOIN tariff_plan p ON p.version_id = v.id
  JOIN tariff_destination d ON d.version_id = v.id AND d.name = 'prefix ' || r.prefix;

-- cdr.tariff_id now names the tariff *version* that rated the call.
ALTER TABLE cdr DROP CONSTRAINT cdr_tariff_id_fkey;
UPDATE cdr SET tariff_id = v.id FROM tariff_version v WHERE v.tariff_id = cdr.tariff_id;
ALTER TABLE cdr ADD CONSTRAINT cdr_tariff_version_fkey
    FOREIGN KEY (tariff_id) REFERENCES tariff_version;
COMMENT ON COLUMN cdr.tariff_id IS 'the tariff version (kondge.tariff_version) that rated the call';

DROP TABLE rate;
ALTER TABLE tariff DROP COLUMN currency, DROP COLUMN decimals, DROP COLUMN rounding,
                   DROP COLUMN connect_charge, DROP COLUMN initial_block,
                   DROP COLUMN increment;
COMMENT ON TABLE tariff IS 'a named tariff; its prices are in its versions (tariff_version)';

-- Everything the rating engine needs for one call, or NULL when nothing
-- applies (no version in force, no plan matches, no destination, no rate:
-- the call is refused as DestinationBlocked).
--   tariff: the card's own tariff (p_tariff_id) or else the default one;
--   version: the one in force at p_at (the latest valid_from <= p_at),
--            or exactly p_version_id when given (re-rating, diff);
--   plan: the highest priority among those whose selectors all match;
--   destination: the longest prefix of p_destination in that version.
CREATE FUNCTION rating_context(
    p_category text, p_destination text, p_caller text, p_access_number text,
    p_gateway_id integer, p_at timestamptz,
    p_tariff_id integer DEFAULT NULL, p_version_id integer DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_version kondge.tariff_version%ROWTYPE;
    v_tariff  text;
    v_gateway text;
    v_plan    kondge.tariff_plan%ROWTYPE;
    v_prefix  text;
    v_dest_id integer;
    v_dest    text;
    v_rates   jsonb;
    v_prefixes text[] := kondge.prefixes_of(p_destination);
BEGIN
    IF p_destination IS NULL OR p_destination !~ '^[0-9]{1,32}$' THEN
        RETURN NULL;
    END IF;
    IF p_version_id IS NOT NULL THEN
        SELECT * INTO v_version FROM kondge.tariff_version WHERE id = p_version_id;
    ELSE
        SELECT * INTO v_version FROM kondge.tariff_version
         WHERE tariff_id = coalesce(p_tariff_id,
                                    (SELECT id FROM kondge.tariff WHERE is_default))
           AND valid_from <= p_at
         ORDER BY valid_from DESC, id DESC LIMIT 1;
    END IF;
    IF v_version.id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT name INTO v_tariff FROM kondge.tariff WHERE id = v_version.tariff_id;
    SELECT name INTO v_gateway FROM kondge.gateway WHERE id = p_gateway_id;

    SELECT * INTO v_plan FROM kondge.tariff_plan p
     WHERE p.version_id = v_version.id
       AND (p.categories IS NULL OR p_category = ANY (p.categories))
       AND (p.gateways IS NULL OR v_gateway = ANY (p.gateways))
       AND (p.access_prefixes IS NULL OR EXISTS (
                SELECT 1 FROM unnest(p.access_prefixes) a
                 WHERE starts_with(coalesce(p_access_number, ''), a)))
       AND (p.caller_prefixes IS NULL OR EXISTS (
                SELECT 1 FROM unnest(p.caller_prefixes) c
                 WHERE starts_with(coalesce(p_caller, ''), c)))
     ORDER BY p.priority DESC, p.id LIMIT 1;
    IF v_plan.id IS NULL THEN
        RETURN NULL;
    END IF;

    SELECT tp.prefix, tp.destination_id INTO v_prefix, v_dest_id
      FROM kondge.tariff_prefix tp
     WHERE tp.version_id = v_version.id
       AND tp.prefix = ANY (v_prefixes)
     ORDER BY length(tp.prefix) DESC LIMIT 1;
    IF v_dest_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_object_agg(band, rate) INTO v_rates FROM kondge.tariff_rate
     WHERE plan_id = v_plan.id AND destination_id = v_dest_id;
    IF v_rates IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT name INTO v_dest FROM kondge.tariff_destination WHERE id = v_dest_id;

    RETURN jsonb_build_object(
        'tariff', v_tariff, 'tariff_id', v_version.tariff_id,
        'version_id', v_version.id, 'version', v_version.version,
        'valid_from', v_version.valid_from,
        'currency', v_version.currency, 'decimals', v_version.decimals,
        'rounding', v_version.rounding, 'rules', v_version.rules,
        'plan', v_plan.name, 'category', p_category,
        'destination', v_dest, 'prefix', v_prefix, 'rates', v_rates);
END;
$$;
