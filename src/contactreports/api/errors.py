"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
import msgspec.inspect as types
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from contactreports.ingest import NAMED_FIELD
from contactreports.models import FieldError
from contactreports.store.database import StoreBusy, StoreUnavailable

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
# msgspec's message for a value outside a Literal or an Enum: it names no value that is allowed.
_INVALID_ENUM = re.compile(r"^Invalid enum value (.+)$", re.DOTALL)
_INDEX = re.compile(r"^\[?\d+\]?$")


def naming_the_allowed(error: FieldError, annotation: Any) -> FieldError:
    """`Invalid enum value 'pdf'` -> `'pdf' is not one of csv, ndjson, xlsx`, the values of the field's type
    in `annotation` (the body's type, or the handler's parameters); other errors as they are."""
    wrong = _INVALID_ENUM.match(error.message)
    allowed = wrong and _enum_values(types.type_info(annotation), error.field.replace("[", ".[").split("."))
    if not allowed:
        return error
    return FieldError(error.field, f"{wrong[1]} is not one of {', '.join(map(str, allowed))}")


def _enum_values(kind: types.Type, path: list[str]) -> tuple | None:
    """The values allowed at `path` (field names and list indexes) in `kind`, if it is an enum there."""
    path = [step for step in path if step]
    while isinstance(kind, types.Metadata):  # Annotated[...]
        kind = kind.type
    if isinstance(kind, types.UnionType):  # an optional one
        return next(filter(None, (_enum_values(member, path) for member in kind.types)), None)
    if not path:
        if isinstance(kind, types.EnumType):
            return tuple(member.value for member in kind.cls)
        return kind.values if isinstance(kind, types.LiteralType) else None
    if isinstance(kind, types.StructType):
        field = next((field for field in kind.fields if field.encode_name == path[0]), None)
        return field and _enum_values(field.type, path[1:])
    if isinstance(kind, types.ListType | types.SetType | types.FrozenSetType | types.VarTupleType):
        return _enum_values(kind.item_type, path[1:]) if _INDEX.match(path[0]) else None
    return _enum_values(kind.value_type, path[1:]) if isinstance(kind, types.DictType) else None


def _problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def handle_problem(_: Request, error: ProblemError) -> Response[Problem]:
    return _problem_response(error.problem, error.headers)


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
    ValidationException: handle_validation,
    HTTPException: handle_http,
    StoreBusy: handle_busy,
    StoreUnavailable: handle_unavailable,
    Exception: handle_unexpected,
}
