"""Schemathesis hooks for tests/test_fuzz.py, loaded by the CLI through SCHEMATHESIS_HOOKS.

`POST /api/events` also takes NDJSON, which schemathesis cannot send by itself: the OpenAPI
document describes one line (an event), so a generated value is written as one line, and a
generated array (negative cases may be anything JSON) as one line per element.

The run's own API key is never rotated or revoked (see `before_call`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

# The id of the API key the run authenticates with: tests/test_fuzz.py sets it.
OWN_KEY_ID = os.environ["FUZZ_OWN_KEY_ID"]


@schemathesis.serializer("application/x-ndjson")
def ndjson(_: Any, value: Any) -> bytes:
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """A call that would rotate or revoke the run's own key (its id is in `GET /api/keys`, whose answers
    the run reuses) names a key that exists nowhere instead, a 404: with its key gone, every later
    request of the run would be a 401, and fuzz nothing."""
    if (case.path_parameters or {}).get("key_id") == OWN_KEY_ID:
        case.path_parameters["key_id"] = "not-the-runs-own-key"
