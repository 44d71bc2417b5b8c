-- Every table an account's data lives in is led by account_id, and every unique key holds it:
-- what a distributed PostgreSQL (Citus) needs to shard them all by account and route each
-- statement to one shard (README, "Running at scale"). The same change as SQLite's 008, plus
-- the keys SQLite does not need to change (reports, campaigns).

ALTER TABLE report_rows ADD COLUMN account_id BIGINT;
UPDATE report_rows r SET account_id = p.account_id FROM reports p WHERE p.pk = r.report_pk;
DELETE FROM report_rows WHERE account_id IS NULL;  -- rows of reports that no longer exist
ALTER TABLE report_rows ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE report_rows DROP CONSTRAINT report_rows_pkey;
ALTER TABLE report_rows ADD PRIMARY KEY (account_id, report_pk, occurred_at, seq);

ALTER TABLE report_summaries ADD COLUMN account_id BIGINT;
UPDATE report_summaries s SET account_id = p.account_id FROM reports p WHERE p.pk = s.report_pk;
DELETE FROM report_summaries WHERE account_id IS NULL;
ALTER TABLE report_summaries ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE report_summaries DROP CONSTRAINT report_summaries_pkey;
ALTER TABLE report_summaries ADD PRIMARY KEY (account_id, report_pk);

ALTER TABLE reports DROP CONSTRAINT reports_pkey;
ALTER TABLE reports ADD PRIMARY KEY (account_id, pk);
ALTER TABLE reports DROP CONSTRAINT reports_id_key;
ALTER TABLE reports ADD CONSTRAINT reports_account_id_id_key UNIQUE (account_id, id);

ALTER TABLE campaigns DROP CONSTRAINT campaigns_pkey;
ALTER TABLE campaigns ADD PRIMARY KEY (account_id, pk);

DROP INDEX events_by_campaign;
CREATE INDEX events_by_campaign ON events (account_id, campaign_pk, seq) WHERE campaign_pk IS NOT NULL;
DROP INDEX archived_events_by_campaign;
CREATE INDEX archived_events_by_campaign ON archived_events (account_id, campaign_pk, seq);
