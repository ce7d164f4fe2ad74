-- Callers (ANI) bound to cards, access-number policies, number formats and
-- prompt languages per gateway.
SET search_path = kondge, public;

-- How a gateway writes phone numbers, so that one person's number matches
-- however it is sent: '+447911123456', '00447911123456' and '07911123456'
-- from a UK gateway are all 447911123456.
ALTER TABLE gateway
    ADD COLUMN country_code text NOT NULL DEFAULT '' CHECK (country_code ~ '^[0-9]{0,3}$'),
    ADD COLUMN international_prefix text NOT NULL DEFAULT '00'
        CHECK (international_prefix ~ '^[0-9]{0,4}$'),
    ADD COLUMN national_prefix text NOT NULL DEFAULT '' CHECK (national_prefix ~ '^[0-9]{0,2}$'),
    -- our language codes -> what this gateway's IVR expects, e.g. {"zh": "ch"}
    ADD COLUMN language_map jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(language_map) = 'object');

-- A caller number (international form, digits only) logs in to its card
-- without a card number or PIN. One number belongs to at most one card.
CREATE TABLE caller (
    number     text PRIMARY KEY CHECK (number ~ '^[0-9]{4,32}$'),
    card_id    bigint NOT NULL REFERENCES card ON DELETE CASCADE,
    auto_bound boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX caller_card ON caller (card_id);

-- Binding by itself after a successful card login, per category.
ALTER TABLE category
    ADD COLUMN auto_bind boolean NOT NULL DEFAULT false,
    ADD COLUMN max_callers integer NOT NULL DEFAULT 3 CHECK (max_callers >= 0);

-- Access numbers: which logins each allows, its default prompt language and
-- an optional prompt id. A number with no row gets the default policy
-- (card and caller login, the card's own language).
ALTER TABLE access_number
    ADD COLUMN login text NOT NULL DEFAULT 'both' CHECK (login IN ('card', 'caller', 'both')),
    ADD COLUMN language text CHECK (language ~ '^[a-z]{2,3}$'),
    ADD COLUMN prompt_id integer CHECK (prompt_id >= 0);
