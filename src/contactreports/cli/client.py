"""A small HTTP client for the API (docs/openapi.json), used by `contactreports report|webhooks|keys ...`.

It talks to a running service, never to the database, so it works against any deployment.
Every failure becomes an `ApiError` whose message a person can act on: the CLI prints it as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

# The API's own response Structs: api/schemas.py and reports/view.py import msgspec and models only, not Litestar.
from contactreports.api.schemas import (
    ApiKeyMade,
    ApiKeyOut,
    WebhookProviderOut,
    WebhooksOut,
    WebhookTokenOut,
)
from contactreports.models import FieldError
from contactreports.reports.view import ReportOut

DEFAULT_URL = "http://127.0.0.1:8000"
PAGE_LIMIT = 500  # the API's largest page: fewest round trips when reading every row


def _segment(value: str) -> str:
    """`value` as one path segment: an id typed as "../campaigns/x" must not reach another
    endpoint, nor one typed as ".." or ".", which a URL takes as a step (its dots escaped too)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


class CampaignRef(msgspec.Struct):
    id: str
    name: str
    archived: bool


class Row(msgspec.Struct):
    occurred_at: str
    action: str
    category: str
    campaign: CampaignRef | None
    details: dict[str, Any]


class ReportPage(msgspec.Struct):
    items: list[ReportOut]
    next_cursor: str | None


class RowPage(msgspec.Struct):
    items: list[Row]
    next_cursor: str | None


class KeyPage(msgspec.Struct):
    items: list[ApiKeyOut]
    next_cursor: str | None


class Problem(msgspec.Struct):
    """RFC 9457 problem details; lenient, so any server's problem body decodes."""

    status: int
    title: str = ""
    detail: str = ""
    errors: list[FieldError] = []
    active_report_id: str | None = None


class ApiError(Exception):
    """A failed call, with a message meant for people."""

    def __init__(self, message: str, status: int | None = None, active_report_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.active_report_id = active_report_id


def problem_message(response: httpx.Response) -> str:
    """What went wrong, from a problem+json body (or the raw body of a non-conforming server)."""
    try:
        problem = msgspec.json.decode(response.content, type=Problem)
    except msgspec.DecodeError:
        text = response.text.strip()[:200] or response.reason_phrase
        return f"HTTP {response.status_code}: {text}"
    # The API's own validation detail points at the `errors` field; a person wants the errors.
    detail = "the request is invalid" if problem.errors else problem.detail
    lines = [f"{problem.title or response.reason_phrase} ({problem.status}): {detail}"]
    lines += [f"  {error.field}: {error.message}" for error in problem.errors]
    if response.status_code == 401:
        lines.append("Check the API key (--api-key or CONTACTREPORTS_API_KEY).")
    if response.status_code == 429 and (retry := response.headers.get("retry-after")):
        lines.append(f"Retry after {retry} s.")
    if problem.active_report_id:
        lines.append(f"Follow it with: contactreports report show {problem.active_report_id} --wait")
    return "\n".join(lines)


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    active = None
    if response.status_code == 409:
        try:
            active = msgspec.json.decode(response.content, type=Problem).active_report_id
        except msgspec.DecodeError:
            pass
    raise ApiError(problem_message(response), response.status_code, active)


def filename_from(response: httpx.Response, fallback: str) -> str:
    """The attachment's file name, reduced to a bare name so a server cannot write outside the cwd."""
    match = re.search(r'filename="?([^";]+)"?', response.headers.get("content-disposition", ""))
    name = Path(match[1]).name if match else ""
    return name or fallback


class Client:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unreachable(self, error: httpx.TransportError) -> ApiError:
        return ApiError(
            f"cannot reach the contactreports API at {self.base_url} ({error or type(error).__name__}).\n"
            "Start it with `contactreports up` (or `contactreports serve` plus `contactreports worker`), "
            "or point --url / CONTACTREPORTS_URL at a running one."
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        except httpx.InvalidURL as error:
            raise ApiError(f"bad API URL {self.base_url!r}: {error}") from error
        _raise_for_problem(response)
        return response

    def _decode(self, response: httpx.Response, type_: type) -> Any:
        try:
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.DecodeError as error:
            raise ApiError(f"unexpected response from {response.request.url}: {error}") from error

    def create_report(self, search: dict[str, Any]) -> ReportOut:
        return self._decode(self._request("POST", "/api/reports", json=search), ReportOut)

    def report(self, report_id: str) -> ReportOut:
        return self._decode(self._request("GET", f"/api/reports/{_segment(report_id)}"), ReportOut)

    def rerun(self, report_id: str) -> ReportOut:
        return self._decode(self._request("POST", f"/api/reports/{_segment(report_id)}/rerun"), ReportOut)

    def delete(self, report_id: str) -> None:
        self._request("DELETE", f"/api/reports/{_segment(report_id)}")

    def _pages(self, path: str, page_type: type, params: dict[str, Any]) -> Iterator[Any]:
        """Every item, following `next_cursor` page by page (never the whole list in memory)."""
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self._decode(self._request("GET", path, params=query), page_type)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def reports(self, status: str | None = None, limit: int = PAGE_LIMIT) -> Iterator[ReportOut]:
        params = {"limit": limit, **({"status": status} if status else {})}
        return self._pages("/api/reports", ReportPage, params)

    def rows(self, report_id: str, action: str | None = None, page_size: int = PAGE_LIMIT) -> Iterator[Row]:
        params = {"limit": page_size, **({"action": action} if action else {})}
        return self._pages(f"/api/reports/{_segment(report_id)}/rows", RowPage, params)

    def rotate_webhook_token(self) -> WebhookTokenOut:
        return self._decode(self._request("POST", "/api/webhooks/token"), WebhookTokenOut)

    def webhooks(self) -> WebhooksOut:
        return self._decode(self._request("GET", "/api/webhooks"), WebhooksOut)

    def set_webhook_secret(self, provider: str, secret: str) -> WebhookProviderOut:
        response = self._request("PUT", f"/api/webhooks/{_segment(provider)}", json={"secret": secret})
        return self._decode(response, WebhookProviderOut)

    def delete_webhook_secret(self, provider: str) -> None:
        self._request("DELETE", f"/api/webhooks/{_segment(provider)}")

    def keys(self) -> Iterator[ApiKeyOut]:
        return self._pages("/api/keys", KeyPage, {"limit": PAGE_LIMIT})

    def create_key(self, name: str, *, read_only: bool) -> ApiKeyMade:
        response = self._request("POST", "/api/keys", json={"name": name, "read_only": read_only})
        return self._decode(response, ApiKeyMade)

    def rotate_key(self, key_id: str) -> ApiKeyMade:
        return self._decode(self._request("POST", f"/api/keys/{_segment(key_id)}/rotate"), ApiKeyMade)

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"/api/keys/{_segment(key_id)}")

    @contextmanager
    def export(self, report_id: str, file_format: str) -> Iterator[tuple[str, Iterator[bytes]]]:
        """The export's suggested file name and its bytes, streamed (an export can be large).

        The caller opens its file only inside this block, once the API has answered 200, so an
        error leaves no empty file behind.
        """
        path = f"/api/reports/{_segment(report_id)}/export"
        try:
            with self._http.stream("GET", path, params={"format": file_format}) as response:
                if not response.is_success:
                    response.read()
                    _raise_for_problem(response)
                yield (
                    filename_from(response, f"contact-report-{report_id}.{file_format}"),
                    response.iter_bytes(),
                )
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
