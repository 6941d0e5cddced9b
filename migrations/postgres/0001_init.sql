-- PostgreSQL twin of migrations/sqlite/0001_init.sql: same tables, columns
-- and meaning; integers are BIGINT so both backends decode them as i64.
CREATE TABLE transfers (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL,
    upstream_status  TEXT,
    upstream_json    TEXT,
    callback_url     TEXT,
    metadata_json    TEXT    NOT NULL DEFAULT '{}',
    request_json     TEXT    NOT NULL,
    polls            BIGINT  NOT NULL DEFAULT 0,
    reason           TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);
CREATE INDEX transfers_state ON transfers (state, seq);

CREATE TABLE actions (
    id               TEXT    PRIMARY KEY,
    transfer_id      TEXT    NOT NULL REFERENCES transfers (id),
    kind             TEXT    NOT NULL,
    target_json      TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  BIGINT  NOT NULL,
    claimed_until    BIGINT,
    created_at       TEXT    NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX actions_due ON actions (status, next_attempt_at);
CREATE INDEX actions_transfer ON actions (transfer_id);
