"""`GET /api/actions`: the action catalogue."""

from __future__ import annotations

from litestar import get

from contactreports.api.errors import problem_responses
from contactreports.api.schemas import ActionOut, Catalogue, CategoryOut
from contactreports.catalogue import CATEGORIES

_CATALOGUE = Catalogue(
    [CategoryOut(c.name, c.label, [ActionOut(a.name, a.label) for a in c.actions]) for c in CATEGORIES]
)


@get(
    "/actions",
    operation_id="listActions",
    tags=["actions"],
    responses=problem_responses(),
    summary="The action catalogue",
)
async def list_actions() -> Catalogue:
    return _CATALOGUE
