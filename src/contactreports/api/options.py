"""`OPTIONS` answers naming every method of the path, in `Allow`.

Litestar 2 gives each path an automatic OPTIONS handler, but on a path whose methods come from
more than one handler it keeps the list of the first one registered (litestar-org/litestar#4169,
fixed only in Litestar 3): `OPTIONS /api/reports` answered `Allow: OPTIONS, POST`, hiding GET.
"""

from __future__ import annotations

from litestar import Request, Response
from litestar.enums import MediaType


async def answer_options(request: Request) -> Response | None:
    """A before-request hook: answers OPTIONS from the matched route's methods, all of them."""
    if request.method != "OPTIONS":
        return None
    template = request.scope["path_template"]
    methods = next(route.methods for route in request.app.routes if route.path_format == template)
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))}, media_type=MediaType.TEXT)
