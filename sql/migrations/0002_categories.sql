-- Card categories (products): what a card is sold as. The call path reads
-- billing (prepaid/postpaid), credit_limit and max_calls; the card tools
-- read the rest.
SET search_path = kondge, public;

CREATE TABLE category (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    description   text NOT NULL DEFAULT '',
    face_value    numeric NOT NULL DEFAULT 0 CHECK (face_value >= 0),
    currency      char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- validity: none; a fixed date; N days after first use; N days after issue
    validity      text NOT NULL DEFAULT 'none'
                  CHECK (validity IN ('none', 'fixed', 'after-first-use', 'after-issue')),
    valid_until   timestamptz,
    valid_days    integer CHECK (valid_days > 0),
    language      text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    max_calls     integer NOT NULL DEFAULT 1 CHECK (max_calls > 0),
    billing       text NOT NULL DEFAULT 'prepaid' CHECK (billing IN ('prepaid', 'postpaid')),
    credit_limit  numeric NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    pin_length    integer NOT NULL DEFAULT 4 CHECK (pin_length BETWEEN 4 AND 12),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (validity <> 'fixed' OR valid_until IS NOT NULL),
    CHECK (validity NOT IN ('after-first-use', 'after-issue') OR valid_days IS NOT NULL),
    CHECK (billing = 'postpaid' OR credit_limit = 0)
);
INSERT INTO category (name, description, max_calls)
VALUES ('standard', 'the default category', 1);

ALTER TABLE card ADD CONSTRAINT card_category FOREIGN KEY (category) REFERENCES category (name);
ALTER TABLE card ADD COLUMN first_used_at timestamptz;
