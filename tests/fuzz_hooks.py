"""Schemathesis hooks for tests/test_fuzz.py, loaded by the CLI through SCHEMATHESIS_HOOKS.

`POST /api/events` also takes NDJSON, which schemathesis cannot send by itself: the OpenAPI
document describes one line (an event), so a generated value is written as one line, and a
generated array (negative cases may be anything JSON) as one line per element.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_: Any, value: Any) -> bytes:
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()
