"""The wire form of a request's live events (``text/event-stream``), written with FastAPI's
Server-Sent Events encoder.

Each event is one block: ``event:`` its type, ``data:`` one line of JSON (the id, the type, the
request, when, and what the event carries), ``id:`` its id, the cursor a client resumes from
(``Last-Event-ID``). The stream opens with a ``retry:`` hint; a quiet stream gets a comment
(``: keep-alive``) every keep-alive interval.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from fastapi.exceptions import RequestValidationError
from fastapi.sse import format_sse_event

from creativeflow.domain.events import RequestEvent, public_view
from creativeflow.services.live_events import EventStream, KeepAlive

KEEP_ALIVE_FRAME = format_sse_event(comment="keep-alive")
# event ids are PostgreSQL bigints: at most 19 digits, and 18 are far more than will be used
CURSOR = re.compile(r"[0-9]{1,18}")
CURSOR_PATTERN = "^[0-9]{0,18}$"  # as OpenAPI documents it (empty: from the first event)
CURSOR_RULE = "the id of an event this stream gave: 1 to 18 digits"


def frame_event(event: RequestEvent) -> bytes:
    # compact JSON escapes every line break, so the data is one line
    data = json.dumps(public_view(event), separators=(",", ":"), ensure_ascii=False)
    return format_sse_event(event=event.type.value, data_str=data, id=str(event.id))


def frame_retry(milliseconds: int) -> bytes:
    return format_sse_event(retry=milliseconds)


def parse_cursor(header: str | None, query: str | None) -> int:
    """The cursor to resume after: the ``Last-Event-ID`` header (what an ``EventSource`` sends
    when it reconnects) wins over the ``last_event_id`` query parameter (for clients that cannot
    set headers); neither, or an empty one, is 0, from the first event."""
    where, value = ("header", "Last-Event-ID"), header
    if not value:
        where, value = ("query", "last_event_id"), query
    if not value:
        return 0
    if CURSOR.fullmatch(value) is None:
        raise RequestValidationError(
            [{"loc": where, "msg": f"must be {CURSOR_RULE}", "type": "value_error"}]
        )
    return int(value)


async def event_stream_body(stream: EventStream, retry_ms: int) -> AsyncIterator[bytes]:
    """The body of an open stream; its place among the limits is given back however it ends
    (the client gone included)."""
    try:
        yield frame_retry(retry_ms)
        async for item in stream.items():
            yield KEEP_ALIVE_FRAME if isinstance(item, KeepAlive) else frame_event(item)
    finally:
        stream.close()
