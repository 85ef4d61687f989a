"""`GET /v2/pods/{id}/logs`: the pod's log as Server-Sent Events, following new lines.

RunPod REST API v2 (openapi.json, getPodLogs; parameters LogSourceParam, LogTail,
LogSince, LogLastEventID): `Content-Type: text/event-stream`, `Cache-Control: no-cache`,
`Connection: keep-alive`, `X-Accel-Buffering: no`; each event is
    id: <ts>
    data: {"ts": "<RFC 3339, microseconds, Z>", "source": "container"|"system", "line": "..."}
with "Log-event `id` values are the event `ts` timestamp" (the document's example shows an
id of the form `<ts>/<sequence>`; the simulator sends the `ts` its description names, and
reads either form back). Parameters: `source` (absent: both), `tail` (backfill the last N
lines, default 100, 0..5000), `since` (only lines after that time; `tail` is then
ignored), `Last-Event-ID` (only lines after that id; it "takes precedence over `since` and
`tail`"). Then the stream follows: new lines are sent as they are written, until the pod
is terminated (the stream ends after its last line) or the client leaves. An unknown or
terminated pod is 404 (NotFoundError); a bad parameter is 400 (undocumented: the document
lists no 400 or 422 for this path).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from podmgr.sim import operations
from podmgr.sim.narrator import Narrator
from podmgr.sim.operations import SimApiError
from podmgr.sim.podlogs import LogLine, PodLog, parse_ts
from podmgr.sim.v2.intake import RATE_HEADERS, route
from podmgr.sim.world import WORLD

__all__ = ["NARRATOR", "log_routes"]

NARRATOR = web.AppKey("narrator", Narrator)
DEFAULT_TAIL = 100
MAX_TAIL = 5000
# How long a follower waits for a line before checking that its client is still there.
_FOLLOW_POLL_SECONDS = 0.5


def _event(line: LogLine) -> bytes:
    data = orjson.dumps({"ts": line.ts_text, "source": line.source, "line": line.line})
    return b"id: " + line.ts_text.encode() + b"\ndata: " + data + b"\n\n"


def _cursor(request: web.Request) -> int | None:
    """The timestamp to resume after (Last-Event-ID, else since), or None."""
    for raw in (request.headers.get("Last-Event-ID"), request.query.get("since")):
        if raw:
            try:
                return parse_ts(raw)
            except ValueError:
                raise SimApiError("bad_request", f"not an RFC 3339 time: {raw!r}") from None
    return None


def _tail(request: web.Request) -> int:
    raw = request.query.get("tail", str(DEFAULT_TAIL))
    if not raw.isdigit() or int(raw) > MAX_TAIL:
        raise SimApiError("bad_request", f"tail must be a whole number 0..{MAX_TAIL}")
    return int(raw)


def _backfill(log: PodLog, request: web.Request, source: str | None) -> tuple[list[LogLine], int]:
    """The lines to send first, and the timestamp later lines must pass."""
    cursor = _cursor(request)
    wanted = [x for x in log.lines if source is None or x.source == source]
    if cursor is not None:
        return [x for x in wanted if x.ts > cursor], log.last_ts
    tail = _tail(request)
    return (wanted[-tail:] if tail else []), log.last_ts


async def pod_logs(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    source = request.query.get("source")
    if source not in (None, "container", "system"):
        raise SimApiError("bad_request", "source must be container or system")
    pod = operations.get(world, request.match_info["id"])
    narrator = request.app.get(NARRATOR)
    if narrator is not None:
        narrator.observe()
    log = world.logs.of(pod.id)
    first, seen = _backfill(log, request, source)
    response = web.StreamResponse(
        headers={
            **request.get(RATE_HEADERS, {}),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        for line in first:
            await response.write(_event(line))
        while True:
            fresh = log.after(seen)
            if fresh:
                seen = fresh[-1].ts
            for line in fresh:
                if source is None or line.source == source:
                    await response.write(_event(line))
            if log.closed and not log.after(seen):
                break
            transport = request.transport
            if transport is None or transport.is_closing():
                return response
            await log.wait_change(_FOLLOW_POLL_SECONDS)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left
    return response


def log_routes() -> list[web.RouteDef]:
    return [web.get("/v2/pods/{id}/logs", route("logs", False, pod_logs))]
