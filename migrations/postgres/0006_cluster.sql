-- Twin of migrations/sqlite/0006_cluster.sql.
ALTER TABLE transfers ADD COLUMN owner TEXT;
CREATE INDEX transfers_owner ON transfers (owner, state);
ALTER TABLE actions ADD COLUMN claimed_by TEXT;
CREATE TABLE instances (
    id          TEXT    PRIMARY KEY,
    expires_at  BIGINT  NOT NULL,
    started_at  TEXT    NOT NULL
);
