-- A report a triage rule skipped has no record: skipped_by names the rule,
-- and the report counts as processed all the same.
ALTER TABLE m2a_message ADD COLUMN skipped_by TEXT NOT NULL DEFAULT '';
