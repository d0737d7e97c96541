-- Campaigns: reports of the same email by several people, on one Archer
-- record. Times are Unix milliseconds, so comparisons are numeric on every
-- database.
CREATE TABLE m2a_campaign (
    id         TEXT PRIMARY KEY,
    -- first_at is the first report's time: the window counts from it.
    first_at   BIGINT NOT NULL,
    -- record_key is the key of the campaign's Archer record, looked up
    -- before it is created; record_id is set once it exists.
    record_key TEXT NOT NULL,
    record_id  BIGINT,
    -- applied is the number of reports the record shows; state holds
    -- (JSON) the text of the fields that grow and the attachment ids.
    applied    INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT '{}',
    -- holder holds the campaign until held_until while it writes to
    -- Archer: one writer per campaign.
    holder     TEXT NOT NULL DEFAULT '',
    held_until BIGINT NOT NULL DEFAULT 0
);

-- Each key names at most one campaign at a time; a key of a campaign
-- whose window has passed is taken by the next campaign.
CREATE TABLE m2a_campaign_key (
    campaign_key TEXT PRIMARY KEY,
    campaign_id  TEXT NOT NULL,
    first_at     BIGINT NOT NULL
);

-- The reports of each campaign; a report is counted once, however often
-- its job runs.
CREATE TABLE m2a_campaign_report (
    mailbox     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    reporter    TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (mailbox, message_id)
);
CREATE INDEX m2a_campaign_report_campaign ON m2a_campaign_report (campaign_id, reported_at);
