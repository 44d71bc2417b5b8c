"""The arq side: the report job, the reconciler and the worker settings."""
