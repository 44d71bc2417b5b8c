"""The HTTP API (Litestar): turns requests into store calls and enqueues report runs."""
