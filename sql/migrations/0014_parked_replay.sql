-- Accounting records the call path could not process are kept whole in
-- unprocessed_record; `kondge parked replay` stores them once the cause is
-- mended, and each keeps when it was replayed and what came of it.
SET search_path = kondge, public;

ALTER TABLE unprocessed_record
    ADD COLUMN replayed_at timestamptz,
    ADD COLUMN replay_outcome text;
CREATE INDEX unprocessed_record_waiting ON unprocessed_record (id) WHERE replayed_at IS NULL;
