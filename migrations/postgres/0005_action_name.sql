-- Twin of migrations/sqlite/0005_action_name.sql.
ALTER TABLE actions ADD COLUMN name TEXT NOT NULL DEFAULT '';
UPDATE actions SET name = substr(id, length(transfer_id) + 2) WHERE name = '';
