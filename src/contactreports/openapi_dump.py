"""Write the OpenAPI document as the app serves it at /schema/openapi.json (docs/openapi.json is one):

.venv/bin/python -m contactreports.openapi_dump docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contactreports.app import create_app
from contactreports.config import Settings


def document() -> dict:
    # The document depends on no setting; the app is only made, never started, so no Redis is reached.
    return create_app(Settings(redis_url="redis://unused")).openapi_schema.to_schema()


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
