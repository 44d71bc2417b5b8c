-- Every claim of a run takes a new lease; only the holder of the latest lease may write.
-- `attempts` stays the count users see: a run handed back on shutdown gives its attempt back,
-- while the lease never goes down, so an older claimant can never match a newer one.
ALTER TABLE reports ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
