-- Transfers the bridge tracks. `seq` orders listings and backs the cursor.
CREATE TABLE transfers (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL,
    upstream_status  TEXT,
    upstream_json    TEXT,
    callback_url     TEXT,
    metadata_json    TEXT    NOT NULL DEFAULT '{}',
    -- Canonical registration body, compared on repeats (200 vs 409).
    request_json     TEXT    NOT NULL,
    polls            INTEGER NOT NULL DEFAULT 0,
    reason           TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
CREATE INDEX transfers_state ON transfers (state, seq);

-- The outbox: every action is written in the transaction of the state change
-- that caused it, and settled only after a broker confirm or a receiver 2xx.
CREATE TABLE actions (
    id               TEXT    PRIMARY KEY,
    transfer_id      TEXT    NOT NULL REFERENCES transfers (id),
    kind             TEXT    NOT NULL,
    target_json      TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- Unix milliseconds: not before this.
    next_attempt_at  INTEGER NOT NULL,
    -- Unix milliseconds: a dispatcher holds this action until then. A crash
    -- leaves the lease to expire; a restart clears it at once.
    claimed_until    INTEGER,
    created_at       TEXT    NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX actions_due ON actions (status, next_attempt_at);
CREATE INDEX actions_transfer ON actions (transfer_id);
