-- Twin of migrations/sqlite/0004_store_probe.sql.
CREATE TABLE store_probe (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
