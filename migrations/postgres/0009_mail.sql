-- Email (issue 23): the outbox, written in the same transaction as the change that causes a message, so a crash
-- loses nothing; one node at a time (the `mail` lease) sends due rows, at least once, with a bounded number of
-- attempts. `body` is sealed with the master key (it can hold a single-use link). `done_at` is set when the
-- message is sent or given up; the purge removes such rows a day later.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    done_at         BIGINT,
    sent            BOOLEAN NOT NULL DEFAULT FALSE,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE done_at IS NULL;
CREATE INDEX mail_outbox_done ON mail_outbox (done_at) WHERE done_at IS NOT NULL;

-- Password reset links: only the digest of the token is stored; a row is deleted when spent, when the account's
-- password changes any other way, and by the purge once expired.
CREATE TABLE password_resets (
    digest     BYTEA PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_resets_by_account ON password_resets (account_id, created_at);
CREATE INDEX password_resets_by_expiry ON password_resets (expires_at);
