-- Times are integer UTC milliseconds; actions are catalogue codes (catalogue.py).

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Signs pagination cursors; shared by every API process that opens this database.
INSERT INTO meta (key, value) VALUES ('cursor_secret', lower(hex(randomblob(32))));
-- The ingestion order of events: ties in occurred_at are shown in this order.
INSERT INTO meta (key, value) VALUES ('event_seq', '0');

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE campaigns (
    pk INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    sent_at INTEGER,
    archived INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, id)
);

-- Clustered on the one read that matters: one contact of one account over a time window.
CREATE TABLE events (
    account_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action INTEGER NOT NULL,
    campaign_pk INTEGER,
    details TEXT,
    PRIMARY KEY (account_id, email, occurred_at, seq)
) WITHOUT ROWID;
-- Archiving a campaign moves its events out of `events`; this finds them.
CREATE INDEX events_by_campaign ON events (campaign_pk) WHERE campaign_pk IS NOT NULL;

-- Events of archived campaigns: the same layout, kept apart so the everyday search stays small.
CREATE TABLE archived_events (
    account_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action INTEGER NOT NULL,
    campaign_pk INTEGER NOT NULL,
    details TEXT,
    PRIMARY KEY (account_id, email, occurred_at, seq)
) WITHOUT ROWID;
CREATE INDEX archived_events_by_campaign ON archived_events (campaign_pk);

-- Client-chosen event ids already ingested, to skip redelivered events.
CREATE TABLE event_ids (
    account_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;

CREATE TABLE reports (
    -- AUTOINCREMENT: a deleted report's pk is never reused, so nothing addressed to it
    -- (a stale job, a cursor) can reach a newer report.
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    email TEXT NOT NULL,
    actions TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    include_archived INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    run INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    scanned INTEGER NOT NULL DEFAULT 0,
    total INTEGER,
    row_count INTEGER,
    error TEXT,
    created_at INTEGER NOT NULL,
    -- When the current run was queued (created or re-run).
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    heartbeat_at INTEGER,
    -- Where an interrupted run resumes: the last (occurred_at, seq) copied. NULL: not started.
    scan_after_at INTEGER,
    scan_after_seq INTEGER
);
-- One report per account may be queued or processing: the database itself says no to a second.
CREATE UNIQUE INDEX reports_one_active_per_account
    ON reports (account_id) WHERE status IN ('queued', 'processing');
CREATE INDEX reports_by_account ON reports (account_id, pk);
-- The reconciler looks for queued reports and processing ones with a stale heartbeat.
CREATE INDEX reports_by_status ON reports (status, heartbeat_at);

-- A report's rows: copies of the matching events, visible only while the report is done.
CREATE TABLE report_rows (
    report_pk INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action INTEGER NOT NULL,
    campaign_pk INTEGER,
    details TEXT,
    PRIMARY KEY (report_pk, occurred_at, seq)
) WITHOUT ROWID;
