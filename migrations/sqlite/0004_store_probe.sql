-- One row that /readyz rewrites: readiness means a commit reaches the disk,
-- so a full disk shows as not ready (and recovery as ready again).
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
