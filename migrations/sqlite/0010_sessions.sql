-- Sessions an account can see and end (issue 23): an id to name one by (never the cookie or its digest), the device
-- (the browser's User-Agent, shortened) and address it was opened from, and when it was last used (to the minute).
-- Sessions opened before this have no id: they are listed and ended with the others.
ALTER TABLE sessions ADD COLUMN id TEXT;
ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX sessions_by_id ON sessions (id);
-- An account's own security events (its sign-ins, password and session changes) are read by target.
CREATE INDEX audit_by_target ON audit_log (target, id);
-- A second factor (issue 23): an authenticator app's TOTP secret (RFC 6238), sealed with the master key, confirmed
-- once the account has typed a code from it; the last time step used, so a code is never accepted twice.
CREATE TABLE second_factors (
    account_id   TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    totp_secret  BLOB NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT,
    created_at   BIGINT NOT NULL
);
-- One-time recovery codes, stored as digests.
CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    digest     BLOB NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (account_id, digest)
);
