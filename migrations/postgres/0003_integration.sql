-- Twin of migrations/sqlite/0003_integration.sql. return_signal stays an
-- integer (0/1) as in SQLite, so one decoder reads both.
ALTER TABLE transfers ADD COLUMN integration TEXT;
ALTER TABLE transfers ADD COLUMN return_signal BIGINT;
