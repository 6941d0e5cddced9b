-- An action's id is `<transfer id>.<name>`, so the primary key's index
-- already orders a transfer's actions together: lookups by transfer read the
-- range [`<id>.`, `<id>/`) of that index (and check transfer_id, since a
-- transfer id may itself contain a dot). The second index on transfer_id
-- cost one more B-tree leaf written, at a random place, per action inserted:
-- about a quarter of the pages a burst of completions writes to the WAL.
DROP INDEX IF EXISTS actions_transfer;
