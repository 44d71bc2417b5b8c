"""The command line, `contactreports` (main.py): the service, its worker, the database, and the
HTTP API's client.
"""
