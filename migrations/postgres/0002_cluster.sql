-- Several nodes on one database: leases for work one node does at a time, and a notification per change.

-- A lease: who does `name` until `expires_at` (Unix seconds). Taken and renewed with one upsert.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Every committed insert into the change feed wakes the nodes that LISTEN on keyward_changes. Notifications
-- are sent at commit (none for a rolled-back change) and one per statement is enough: the listener reads the
-- feed from its own position, so the payload carries nothing.
CREATE FUNCTION keyward_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyward_changes', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER changes_notify
    AFTER INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
