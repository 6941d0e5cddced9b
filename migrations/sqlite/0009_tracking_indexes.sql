-- Every lookup by state or owner asks for TRACKING rows (resuming, adopting,
-- the lease checks), and the list pages by `seq` alone. With whole-table
-- indexes each ending moved its row's entries from the TRACKING part of
-- both indexes to the COMPLETED (or EXPIRED, FAILED, CANCELLED) part, two
-- more B-tree leaves written per commit of endings (2.9 of 16.4 WAL frames
-- per commit in a signalled run). Indexing only the TRACKING rows, an ending
-- only removes its entries, from indexes as small as what is being tracked.
-- The query plans are unchanged (store::plan_tests).
DROP INDEX IF EXISTS transfers_state;
CREATE INDEX transfers_state ON transfers (state, seq) WHERE state = 'TRACKING';
DROP INDEX IF EXISTS transfers_owner;
CREATE INDEX transfers_owner ON transfers (owner, state) WHERE state = 'TRACKING';
