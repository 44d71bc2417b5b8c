-- A done run's summary (rows per action, first and last activity, activity over time), kept
-- at its first view: computing it reads every row, about a second for a 1M-row report.
CREATE TABLE report_summaries (
    report_pk INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    summary TEXT NOT NULL
);
