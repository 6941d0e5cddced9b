-- Twin of migrations/sqlite/0007_budget.sql.
CREATE TABLE budget_days (
    day         TEXT    PRIMARY KEY,
    spent       BIGINT  NOT NULL,
    last_grant  BIGINT  NOT NULL DEFAULT 0
);
CREATE TABLE learned_durations (
    seq          BIGSERIAL PRIMARY KEY,
    instance     TEXT    NOT NULL,
    seconds      DOUBLE PRECISION NOT NULL,
    observed_at  BIGINT  NOT NULL
);
