-- Room on each page of the tables a call updates, so that the update of a
-- row lands on its own page and touches no index (a HOT update): the leg
-- inserted at its Start and stopped minutes later, the hold placed at
-- stage 2, made live by the Start and removed by the Stop, the card whose
-- balance each call moves. With full pages (PostgreSQL's default) the row's
-- new version goes to another page and every index of the table takes an
-- entry for it: bench/call_rows.py counted 0.76 of the service's 5 updates
-- a call outside HOT on short calls (docs/performance.md), and a call of minutes
-- finds the page of its leg full of the legs that came after it.
-- New pages keep the room; pages already written gain it as VACUUM frees
-- their dead rows.
SET search_path = kondge, public;

ALTER TABLE call_leg SET (fillfactor = 70);
ALTER TABLE reservation SET (fillfactor = 50);
ALTER TABLE card SET (fillfactor = 90);
