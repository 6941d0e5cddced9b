-- Ownership: each TRACKING transfer is polled by one instance, its owner,
-- which holds a lease row in `instances` and renews it in bulk. When a lease
-- expires, the survivors adopt the owner's transfers. NULL (rows written
-- before this column) means "whoever resumes first".
ALTER TABLE transfers ADD COLUMN owner TEXT;
CREATE INDEX transfers_owner ON transfers (owner, state);

-- Which instance's dispatcher holds a claimed action, so a restart or an
-- adoption releases exactly that instance's claims.
ALTER TABLE actions ADD COLUMN claimed_by TEXT;

CREATE TABLE instances (
    id          TEXT    PRIMARY KEY,
    -- Unix milliseconds: the instance counts as alive until then.
    expires_at  INTEGER NOT NULL,
    started_at  TEXT    NOT NULL
);
