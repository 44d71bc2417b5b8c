-- Every table a report's data lives in is led by account_id, as on PostgreSQL (where it lets a
-- distributed PostgreSQL shard every table by account, see README "Running at scale"): a report's
-- rows and its summary carry their account, and a campaign's events are found within it.
-- Rows of reports that no longer exist are left behind.

CREATE TABLE report_rows_new (
    account_id INTEGER NOT NULL,
    report_pk INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action INTEGER NOT NULL,
    campaign_pk INTEGER,
    details TEXT,
    PRIMARY KEY (account_id, report_pk, occurred_at, seq)
) WITHOUT ROWID;
INSERT INTO report_rows_new (account_id, report_pk, occurred_at, seq, action, campaign_pk, details)
SELECT p.account_id, r.report_pk, r.occurred_at, r.seq, r.action, r.campaign_pk, r.details
FROM report_rows r JOIN reports p ON p.pk = r.report_pk;
DROP TABLE report_rows;
ALTER TABLE report_rows_new RENAME TO report_rows;

CREATE TABLE report_summaries_new (
    account_id INTEGER NOT NULL,
    report_pk INTEGER NOT NULL,
    run INTEGER NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (account_id, report_pk)
) WITHOUT ROWID;
INSERT INTO report_summaries_new (account_id, report_pk, run, summary)
SELECT p.account_id, s.report_pk, s.run, s.summary FROM report_summaries s JOIN reports p ON p.pk = s.report_pk;
DROP TABLE report_summaries;
ALTER TABLE report_summaries_new RENAME TO report_summaries;

DROP INDEX events_by_campaign;
CREATE INDEX events_by_campaign ON events (account_id, campaign_pk, seq) WHERE campaign_pk IS NOT NULL;
DROP INDEX archived_events_by_campaign;
CREATE INDEX archived_events_by_campaign ON archived_events (account_id, campaign_pk, seq);
