-- Work one process does at a time: leases (the same table as on PostgreSQL; SQLite has no notifications, its
-- followers poll the change feed).

-- A lease: who does `name` until `expires_at` (Unix seconds). Taken and renewed with one upsert.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
