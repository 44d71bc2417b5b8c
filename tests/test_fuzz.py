"""The whole API fuzzed from its own OpenAPI document: never a 5xx, every response as documented.

The schemathesis CLI runs as a child process against the real API (and its worker) over HTTP,
authenticated as a fresh account: every operation, in all its phases (the document's examples,
boundary values, random and invalid inputs, then stateful sequences following the links it
infers, e.g. POST /api/reports -> GET /api/reports/{id}/rows). The account first gets the
campaign and events the document's examples name, so the example report has rows to page and
export. A fixed seed and no example database make a run repeatable; the number of examples per
operation keeps it to some fifteen seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from conftest import ApiAccount
from helpers import ingest, put_campaign

SEED = 20261123
EXAMPLES_PER_OPERATION = 30
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Every check schemathesis has, but these, which cannot hold for this API by design:
EXCLUDED_CHECKS = [
    # "A schema-valid request must be accepted": JSON Schema cannot say what the API checks beyond
    # shapes and types (start before end within the longest window, a plausible email, a campaign
    # the account has, a cursor this list signed), so many schema-valid requests are rightly 400s.
    "positive_data_acceptance",
]
# Inside the example search (ann@example.com, 2026-01-01 to 2026-04-01): rows with and without a
# campaign, an address to normalise, details a spreadsheet would run as a formula, and Unicode.
EVENTS: list[dict[str, Any]] = [
    {
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-01T09:00:00Z",
        "campaign_id": "spring-sale",
    },
    {
        "email": " Ann@Example.COM",
        "action": "email.clicked",
        "occurred_at": "2026-03-01T10:05:00+01:00",
        "campaign_id": "spring-sale",
        "details": {"url": '=HYPERLINK("https://example.com/spring")'},
    },
    {
        "email": "ann@example.com",
        "action": "campaign.profile_updated",
        "occurred_at": "2026-03-02T10:00:00Z",
        "details": {"city": "Tromsø ✓", "history": [{"from": "Oslo"}, 1.5, None]},
    },
]


def schemathesis_command(api: str, api_key: str, reports: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        f"--config-file={CONFIG}",
        "run",
        f"{api}/schema/openapi.json",
        f"--header=Authorization: Bearer {api_key}",
        f"--seed={SEED}",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        "--workers=1",
        "--generation-database=none",
        "--phases=examples,coverage,fuzzing,stateful",
        "--checks=all",
        f"--exclude-checks={','.join(EXCLUDED_CHECKS)}",
        "--report=json,ndjson",
        f"--report-dir={reports}",
    ]


def server_errors(events: Path) -> int:
    """Responses with a 5xx status among every request the run sent, from its NDJSON event log."""
    seen = 0
    for line in events.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario:
            interactions = scenario["recorder"].get("interactions", {}).values()
            seen += sum(interaction["response"]["status_code"] >= 500 for interaction in interactions)
    return seen


async def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_undocumented_response(
    api: str, account: ApiAccount, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await put_campaign(client, "spring-sale", "+Spring sale")
    await ingest(client, EVENTS)
    reports = tmp_path / "reports"
    [own_key] = (await client.get("/api/keys")).json()["items"]

    run = await asyncio.to_thread(
        subprocess.run,
        schemathesis_command(api, account.api_key, reports),
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "FUZZ_OWN_KEY_ID": own_key["id"]},
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = f"{run.stdout}\n{run.stderr}"
    summaries, event_logs = list(reports.glob("json-*.json")), list(reports.glob("ndjson-*.ndjson"))
    assert len(summaries) == len(event_logs) == 1, output
    result = json.loads(summaries[0].read_text())
    cases, five_hundreds = result["test_cases"]["generated"], server_errors(event_logs[0])
    print(f"schemathesis: {cases} cases run, {five_hundreds} 5xx seen")
    assert run.returncode == 0, output
    assert (result["failures"], result["errors"], five_hundreds) == ([], [], 0), output
    assert result["complete"] and result["operations"]["tested"] == result["operations"]["total"], output
    assert (await client.get("/api/reports")).status_code == 200  # the run's key worked to the end
