-- Progressive login lockout, shared by every node (store/login.go).
--
-- One row per username that has had an attempt counted since its last
-- successful login: known accounts and unknown usernames alike, so that a
-- lock never tells whether an account exists, and without creating
-- enterprises. A successful login deletes the row; PruneLogins deletes rows
-- of long-quiet usernames. Times are BIGINT unix nanoseconds (UTC), 0 for
-- "never".
CREATE TABLE logins (
    username        TEXT    PRIMARY KEY,
    failures        BIGINT  NOT NULL DEFAULT 0,  -- consecutive failed (or unfinished) attempts
    locked_until    BIGINT  NOT NULL DEFAULT 0,
    last_failure_at BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX logins_last_failure ON logins(last_failure_at);
