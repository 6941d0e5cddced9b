-- Each action's name (what follows the transfer id in its id: `agent`,
-- `audit.completed`, ...), stored so ids are built from fields and never
-- split apart. Rows written before this column existed get it from their id,
-- which is `<transfer_id>.<name>` by construction.
ALTER TABLE actions ADD COLUMN name TEXT NOT NULL DEFAULT '';
UPDATE actions SET name = substr(id, length(transfer_id) + 2) WHERE name = '';
