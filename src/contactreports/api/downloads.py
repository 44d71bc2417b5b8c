"""A report's rows as an HTTP download: the API's export and the web page's answer alike."""

from __future__ import annotations

from litestar.response import Stream

from contactreports.reports.reading import Download


def download_response(download: Download) -> Stream:
    return Stream(
        download.chunks, media_type=download.media_type, headers={"Content-Disposition": download.disposition}
    )
