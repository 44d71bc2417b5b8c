-- The key of the web page's session cookies (AES-GCM), shared by every API process.
INSERT INTO meta (key, value) VALUES ('session_secret', lower(hex(randomblob(32))));
