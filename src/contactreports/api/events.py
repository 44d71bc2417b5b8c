"""Event ingestion: `POST /api/events`, a JSON array or NDJSON, all or nothing."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.datastructures import State
from litestar.params import JSONBody

from contactreports.api.auth import SignedIn
from contactreports.api.errors import invalid, problem_responses
from contactreports.api.limits import limit_ingestion
from contactreports.api.openapi import NDJSON, EventBatchOperation
from contactreports.api.requests import ApiRequest
from contactreports.api.schemas import IngestResult
from contactreports.ingest import EventIn, InvalidEvents, decode_array, decode_line, to_new_events, too_many_events
from contactreports.store.events import insert_events


class EventBatchRequest(ApiRequest):
    """Decodes the body straight into EventIn structs, from a JSON array or NDJSON lines.

    Litestar then only checks the already-typed list; decoding here lets errors name the
    event's index (`[17].action`) whichever format was sent.
    """

    async def json(self) -> Any:
        body = await self.body()
        try:
            if self.content_type[0] == NDJSON:
                return [decode_line(i, line) for i, line in enumerate(body.splitlines()) if line.strip()]
            return decode_array(body)
        except InvalidEvents as error:
            raise invalid(error.errors) from error


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @post(
        "/",
        operation_id="ingestEvents",
        status_code=200,
        request_class=EventBatchRequest,
        guards=[limit_ingestion],
        responses=problem_responses(403, 413, 429, 503),
        operation_class=EventBatchOperation,
        summary="Ingest events",
        description=(
            "A JSON array, or NDJSON (`Content-Type: application/x-ndjson`, one event a line), of at most "
            "10,000 events. All or nothing: one invalid event rejects the batch, naming its index. "
            "An event whose `id` the account already ingested is skipped and counted as a duplicate."
        ),
    )
    async def ingest(self, data: JSONBody[list[EventIn]], account: SignedIn, state: State) -> IngestResult:
        too_many = too_many_events(len(data), state.settings.max_events_per_batch)
        if too_many is not None:
            raise invalid([too_many])
        try:
            new_events = to_new_events(data, state.settings.max_details_bytes)
        except InvalidEvents as error:
            raise invalid(error.errors) from error
        # An event naming a campaign the account lacks: UnknownCampaigns, answered by api/errors.py.
        ingested, duplicates = await insert_events(state.db, account.id, new_events)
        return IngestResult(ingested, duplicates)
