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
