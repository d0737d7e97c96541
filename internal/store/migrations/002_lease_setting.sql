-- Leases elect the one replica that does a singleton's work, such as keeping
-- the Graph subscriptions alive. expires_at is Unix milliseconds, so the
-- comparison is numeric on every database.
CREATE TABLE m2a_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Small values written once and kept, such as the time a mailbox was first
-- seen, which bounds its initial sync.
CREATE TABLE m2a_setting (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
