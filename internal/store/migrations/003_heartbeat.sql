-- One row the service rewrites every few seconds: readiness turns
-- not-ready as soon as the database stops taking writes (disk full,
-- read-only), not at the next notification.
CREATE TABLE m2a_heartbeat (
    id         INTEGER PRIMARY KEY,
    written_at TIMESTAMP NOT NULL
);
