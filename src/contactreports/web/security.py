"""What keeps the web page's forms and pages to the people who opened them.

Forms are refused when a browser says they come from another origin: the session cookie's
SameSite=Strict stops other *sites*, but another port or subdomain is the same site, and
signing in needs no cookie at all (a page elsewhere could sign a visitor into the attacker's
account, and so learn every contact they look up). Browsers name a request's origin in
Sec-Fetch-Site (all current ones) and Origin; checking them needs no token in every form and
holds across API processes. Requests without either (curl, scripts) are not a browser's and
carry no one's cookie by accident.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler

from contactreports.api.auth import SAFE_METHODS
from contactreports.api.errors import ProblemError

# "none": the user typed or bookmarked it; the browser sends nothing of another page's.
_OWN_SITES = frozenset({"same-origin", "none"})
CROSS_ORIGIN = "This form was sent from another site or page, so it was refused: submit it again from this page."


def same_origin_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if connection.scope["method"] in SAFE_METHODS:
        return
    site = connection.headers.get("sec-fetch-site")
    if site is not None:
        if site in _OWN_SITES:
            return
        raise PermissionDeniedException(CROSS_ORIGIN)
    origin = connection.headers.get("origin")
    # By host only: behind a TLS proxy the app sees http while the browser says https.
    if origin is not None and urlsplit(origin).netloc != connection.headers.get("host"):
        raise PermissionDeniedException(CROSS_ORIGIN)


async def few_form_fields(request: Request, _: BaseRouteHandler) -> None:
    """Refuse a URL-encoded form of more than `max_form_fields` fields before it is parsed.

    Litestar parses such a form with no limit on its fields, on the event loop; the body is
    already bounded by the router's `request_max_body_size`, and counting its separators costs
    next to nothing. (Multipart forms have Litestar's own limit, `multipart_form_part_limit`.)
    """
    if request.scope["method"] in SAFE_METHODS or request.content_type[0] != "application/x-www-form-urlencoded":
        return
    most = request.app.state.settings.max_form_fields
    if (await request.body()).count(b"&") >= most:
        raise ProblemError(413, f"A form may have at most {most} fields.")


# Private pages: never kept by a browser or proxy, never framed (clickjacking), no sniffing;
# only our own scripts and styles (the inline style is the progress bars' width).
PAGE_CACHE = CacheControlHeader(no_store=True)
PAGE_HEADERS = [
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(
        name="Content-Security-Policy",
        value="default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]
