"""The interactive API docs at /schema: Swagger UI, its scripts and styles served by this server.

They come from the swagger-ui-py package, pinned in the lock like every other release, not from a
CDN: the page works offline, and every install shows the same one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

# Found without importing the package: its Python side (a helper for other frameworks) is not used.
_SPEC = importlib.util.find_spec("swagger_ui")
assert _SPEC is not None and _SPEC.submodule_search_locations
SWAGGER_UI = Path(_SPEC.submodule_search_locations[0]) / "static"
ASSETS = "/schema/assets"

docs_assets = create_static_files_router(ASSETS, directories=[SWAGGER_UI], include_in_schema=False)


def docs_page() -> SwaggerRenderPlugin:
    """Swagger UI at /schema (the first render plugin is the root's) and /schema/swagger."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
        path="/swagger",
    )
