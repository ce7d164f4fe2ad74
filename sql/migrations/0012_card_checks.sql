-- A category may name the tariff of its cards that have none of their own
-- (card.tariff_id): the order is the card's own, the category's (this
-- column), the default tariff. The card tools (kondge_billing/store/categories.py,
-- card_tariffs.py) hold it to the category's currency; the call path
-- (sql/functions/radius_card.sql) prices by it.
--
-- No grant is needed: kondge_operator has INSERT and UPDATE on the whole of
-- kondge.category and SELECT on kondge.tariff (sql/grants.sql); the
-- foreign key is checked with the table owner's rights.
SET search_path = kondge, public;

ALTER TABLE category ADD COLUMN tariff_id integer REFERENCES tariff;
COMMENT ON COLUMN category.tariff_id IS
    'the tariff of the category''s cards that have none of their own (else the default '
    'tariff); it prices in the category''s currency';
