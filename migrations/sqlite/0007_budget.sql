-- The upstream's daily request budget, shared by every instance and kept
-- across restarts. `spent` is what instances have reserved from the UTC
-- `day` (YYYY-MM-DD) in small batches; an instance gives back what it did not
-- use when it stops cleanly, so after a crash the unused part of its last
-- batch stays counted (never an overspend). `last_grant` is what the latest
-- reservation got, so one atomic upsert can both grant and report it.
CREATE TABLE budget_days (
    day         TEXT    PRIMARY KEY,
    spent       INTEGER NOT NULL,
    last_grant  INTEGER NOT NULL DEFAULT 0
);

-- Conversation lengths (ONGOING to COMPLETED) that the adaptive poll policy
-- learned, written in batches by the instance that saw them, read back by
-- the others and at start. Old rows are pruned to a few learning windows.
CREATE TABLE learned_durations (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance     TEXT    NOT NULL,
    seconds      REAL    NOT NULL,
    -- Unix milliseconds.
    observed_at  INTEGER NOT NULL
);
