-- Subscriptions this service created, with the clientState secret Graph
-- echoes in every notification. Graph never returns clientState, so this
-- table is the only place it exists.
CREATE TABLE m2a_subscription (
    id           TEXT PRIMARY KEY,
    mailbox      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    client_state TEXT NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX m2a_subscription_mailbox ON m2a_subscription (mailbox, folder);

-- One row per reported email: the intent written before the Archer create,
-- then the Archer record id. It makes record creation exactly-once.
CREATE TABLE m2a_message (
    mailbox             TEXT NOT NULL,
    message_id          TEXT NOT NULL,
    internet_message_id TEXT NOT NULL DEFAULT '',
    record_key          TEXT NOT NULL DEFAULT '',
    record_id           BIGINT,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (mailbox, message_id)
);

-- The Graph delta link per mailbox folder, for the catch-up sweep.
CREATE TABLE m2a_delta_link (
    mailbox    TEXT NOT NULL,
    folder     TEXT NOT NULL,
    link       TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
