"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from contactreports.conversion import naming_the_allowed
from contactreports.exports import ExportTooLarge
from contactreports.ingest import NAMED_FIELD
from contactreports.limits import RateLimited
from contactreports.models import FieldError, InvalidFields
from contactreports.reports.errors import ReportNotFound, ReportNotReady
from contactreports.store.database import StoreBusy, StoreUnavailable
from contactreports.store.events import UnknownCampaigns
from contactreports.store.reports import ActiveReportExists

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class Problem(msgspec.Struct, kw_only=True):
    type: str  # always "about:blank": the status and title say what happened
    title: str
    status: int
    detail: str
    # Only on validation errors and 409s; left out, not null, elsewhere.
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    active_report_id: str | msgspec.UnsetType = msgspec.UNSET


def problem(status: int, detail: str, **extra: object) -> Problem:
    return Problem(type="about:blank", title=HTTPStatus(status).phrase, status=status, detail=detail, **extra)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a handler answers with; every /api handler can give 400 and 401."""
    return {
        status: ResponseSpec(
            Problem, description=HTTPStatus(status).phrase, media_type=PROBLEM_JSON, generate_examples=False
        )
        for status in (400, 401, *statuses)
    }


class ProblemError(Exception):
    """Raise anywhere in a handler to answer with a problem body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        active_report_id: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.problem = problem(
            status, detail, errors=errors or msgspec.UNSET, active_report_id=active_report_id or msgspec.UNSET
        )
        self.headers = headers or {}


def invalid(errors: list[FieldError]) -> ProblemError:
    return ProblemError(400, "The request is invalid: see `errors`.", errors=errors)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"No such {what}.")


_MISSING_PARAMETER = re.compile(r"^Missing required (\w+) parameter '([^']+)'")


def _problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def handle_problem(_: Request, error: ProblemError) -> Response[Problem]:
    return _problem_response(error.problem, error.headers)


def _active_report(error: ActiveReportExists) -> ProblemError:
    return ProblemError(
        409,
        f"Report {error.active_report_id} is still queued or processing; one report per account may be active. "
        "Wait for it to finish, or delete it.",
        active_report_id=error.active_report_id,
    )


def _unknown_campaigns(error: UnknownCampaigns) -> ProblemError:
    """A 400 naming each event whose campaign the account does not have."""
    return invalid(
        [
            FieldError(f"[{i}].campaign_id", f"unknown campaign {campaign!r}")
            for i, campaign in sorted(error.unknown.items())
        ]
    )


# The problem each domain error is, raised by the use cases the handlers call (and their guards).
DOMAIN_PROBLEMS: dict[type[Exception], Callable[[Any], ProblemError]] = {
    InvalidFields: lambda error: invalid(error.errors),
    ReportNotFound: lambda error: ProblemError(404, str(error)),
    ReportNotReady: lambda error: ProblemError(409, str(error)),
    ActiveReportExists: _active_report,
    UnknownCampaigns: _unknown_campaigns,
    ExportTooLarge: lambda error: ProblemError(422, str(error)),
    RateLimited: lambda error: ProblemError(429, str(error), headers={"Retry-After": str(error.seconds)}),
}


def _answer_as_problem(to_problem: Callable[[Any], ProblemError]) -> Callable[[Request, Exception], Response[Problem]]:
    def handle(request: Request, error: Exception) -> Response[Problem]:
        return handle_problem(request, to_problem(error))

    return handle


def handle_validation(request: Request, error: ValidationException) -> Response[Problem]:
    errors = []
    for item in error.extra if isinstance(error.extra, list) else []:
        message = str(item.get("message", "invalid value"))
        key = str(item.get("key", ""))
        if key == "data" and message == "'data'":  # how Litestar reports an empty body
            message = "a JSON body is required"
        if key in ("", "data"):  # the body as a whole: the field, if any, is named in the message
            named = NAMED_FIELD.search(message)
            key = named[1] if named else "body"
        # A parameter's key is its name in the handler's signature (a body is converted by ApiRequest).
        errors.append(naming_the_allowed(FieldError(key, message), request.route_handler.signature_model))
    if missing := _MISSING_PARAMETER.match(error.detail):
        errors.append(FieldError(missing[2], f"a required {missing[1]} parameter"))
    detail = "The request is invalid: see `errors`." if errors else error.detail
    return _problem_response(problem(400, detail, errors=errors or msgspec.UNSET))


def handle_http(_: Request, error: HTTPException) -> Response[Problem]:
    status = error.status_code
    detail = error.detail if error.detail and error.detail != HTTPStatus(status).phrase else _DETAILS.get(status, "")
    return _problem_response(problem(status, detail or HTTPStatus(status).description), error.headers)


def handle_busy(_: Request, error: StoreBusy) -> Response[Problem]:
    return _problem_response(
        problem(503, "The database is busy with a large change; try again in a moment. Nothing was stored."),
        {"Retry-After": "1"},
    )


def handle_unavailable(_: Request, error: StoreUnavailable) -> Response[Problem]:
    log.warning("database unavailable: %s", error)
    return _problem_response(
        problem(503, "The database is unavailable; try again in a moment. Nothing was stored."),
        {"Retry-After": "1"},
    )


def handle_unexpected(request: Request, error: Exception) -> Response[Problem]:
    # The route's template, not the path: a webhook's path holds the account's token, kept only hashed.
    path = request.scope.get("path_template") or request.url.path
    log.exception("unhandled error on %s %s", request.method, path, exc_info=error)
    return _problem_response(problem(500, "Something went wrong on our side; it has been logged."))


_DETAILS = {
    404: "No such resource.",
    405: "This method is not allowed on this resource.",
    413: "The request body is larger than this server accepts.",
}

EXCEPTION_HANDLERS = {
    ProblemError: handle_problem,
    **{kind: _answer_as_problem(to_problem) for kind, to_problem in DOMAIN_PROBLEMS.items()},
    ValidationException: handle_validation,
    HTTPException: handle_http,
    StoreBusy: handle_busy,
    StoreUnavailable: handle_unavailable,
    Exception: handle_unexpected,
}
