-- What the operator console shows of a report without reading the email
-- again: who reported it, its subject (as the analysis read it, cut), when
-- it arrived (Unix milliseconds) and the triage rule that matched.
ALTER TABLE m2a_message ADD COLUMN reporter TEXT NOT NULL DEFAULT '';
ALTER TABLE m2a_message ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE m2a_message ADD COLUMN received_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE m2a_message ADD COLUMN rule TEXT NOT NULL DEFAULT '';
