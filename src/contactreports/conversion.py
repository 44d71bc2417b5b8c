"""A decoded body converted strictly to its declared type, as the API reads JSON bodies (and the
web page its form): what does not fit is InvalidFields, naming the field and the values allowed."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as types

from contactreports.ingest import field_error
from contactreports.models import FieldError, InvalidFields


def convert_body(value: Any, annotation: Any) -> Any:
    """A decoded body as the handler's type, strictly; raises InvalidFields naming the field that does not fit."""
    try:
        return msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as error:
        raise InvalidFields([naming_the_allowed(field_error(error), annotation)]) from error


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
