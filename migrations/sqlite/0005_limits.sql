-- Abuse protection and observability: a client's own limits, the state of rate limits and quotas that nodes
-- share, and an index so the audit log's retention purge does not scan the table.

-- JSON: the client's overrides of the server's limits ({} = follow the server).
ALTER TABLE clients ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

-- One row per limited key: a rate's theoretical arrival time (Unix microseconds), or a quota window's count.
-- Nodes lease allowance from a row in batches, so a row is written once per batch, never once per request.
-- `expires_at` (Unix seconds) is when the row says nothing any more and the purge may drop it.
CREATE TABLE limit_state (
    key        TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX limit_state_expiry ON limit_state (expires_at);

CREATE INDEX audit_log_at ON audit_log (at);
