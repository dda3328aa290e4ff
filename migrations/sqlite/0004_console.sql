-- The console: API keys an account holder made for themselves, what the platform lets each account give its
-- keys, and tokens issued per client per hour (counted in memory, added here by a periodic flush).

-- The account that made a key in the console (NULL for clients an operator made). Deleting the account deletes
-- its keys (the admin service does it row by row, so the change feed tells every node). Names are unique per owner.
ALTER TABLE clients ADD COLUMN owner_account TEXT REFERENCES accounts (id);
CREATE UNIQUE INDEX clients_owner_name ON clients (owner_account, name);

-- JSON: resource identifier -> scopes the account may put on its own keys ({} = none).
ALTER TABLE accounts ADD COLUMN key_scopes TEXT NOT NULL DEFAULT '{}';

-- `hour` is the Unix time the hour starts. No reference to clients: usage outlives a deleted key until the purge.
CREATE TABLE token_usage (
    client_id TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    tokens    BIGINT NOT NULL,
    PRIMARY KEY (client_id, hour)
);
CREATE INDEX token_usage_by_hour ON token_usage (hour);
