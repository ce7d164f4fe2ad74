-- A category may name the tariff of its cards: a call is rated with the
-- card's own tariff (card.tariff_id), else its category's (this column),
-- else the default tariff. The card tools (kondge_billing/categories.py,
-- card_tariffs.py) hold it to the category's currency; the call path reads
-- it once it is wired in.
--
-- No grant is needed: kondge_operator has INSERT and UPDATE on the whole of
-- kondge.category and SELECT on kondge.tariff (sql/grants.sql); the
-- foreign key is checked with the table owner's rights.
SET search_path = kondge, public;

ALTER TABLE category ADD COLUMN tariff_id integer REFERENCES tariff;
COMMENT ON COLUMN category.tariff_id IS
    'the tariff of the category''s cards that have none of their own (else the default '
    'tariff); it prices in the category''s currency';
