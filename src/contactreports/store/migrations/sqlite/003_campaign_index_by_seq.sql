-- A campaign's events are found by (campaign_pk, seq) rather than (campaign_pk) alone, which
-- SQLite orders by the table's key, the contact's email: new events now land at the end of
-- their campaign's range in the index instead of at random places (faster bulk ingest).
DROP INDEX events_by_campaign;
CREATE INDEX events_by_campaign ON events (campaign_pk, seq) WHERE campaign_pk IS NOT NULL;
DROP INDEX archived_events_by_campaign;
CREATE INDEX archived_events_by_campaign ON archived_events (campaign_pk, seq);
