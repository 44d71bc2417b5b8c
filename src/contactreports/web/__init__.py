"""The web page for people: sign in with an API key, then the account's reports.

Server-rendered (Litestar's Jinja2 templates), one small CSS file and one small script served
by the app itself; the same store functions and rules as the JSON API.
"""
