"""Sending upstream answers to one client: a flight's record, or a plain pass-through.

`serve_flight` feeds a subscriber from a `Flight`: as SSE, event by event as they arrive
(events already waiting go out in one write), or as the assembled JSON answer. The usage
chunk is left out unless the client asked for it (stream_options.include_usage), since the
proxy always asks the model server for it.

`pass_through` forwards any other request (GET /v1/models, unknown routes, bodies that are
not JSON) and streams the upstream body to the client as it comes.

Neither answers a failure itself: each returns it (openai_errors.py made the answer), and
the caller raises it as `Refused` for the handler to answer.
"""

from __future__ import annotations

from starlette.types import Receive

from podmgr.proxy import openai_errors as errors
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.flight import Flight
from podmgr.proxy.forward.sse import stream_from_json
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.transport import Transport

__all__ = ["JSON_HEADERS", "SSE_HEADERS", "pass_through", "serve_flight"]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_RELAYED_HEADERS = frozenset({"content-type", "x-request-id"})
_ERROR_BODY_LIMIT = 64 * 1024
_WHOLE_BODY_LIMIT = 256 * 1024
_UNKNOWN = _WHOLE_BODY_LIMIT + 1


async def serve_flight(
    flight: Flight,
    out: Responder,
    client_stream: bool,
    include_usage: bool,
    extra: list[tuple[bytes, bytes]],
) -> ProxyFailure | None:
    """Answer one subscriber of `flight`; returns the flight's failure, unanswered, when
    nothing could be sent (the caller raises it for the handler).

    A client that asked for a stream of a flight that streams is fed event by event; every
    other pairing waits for the end and gets the whole answer at once."""
    if client_stream:
        await flight.wait_started()
    if not (client_stream and flight.sse):
        await flight.wait_done()
        if flight.failure is not None:
            return flight.failure
        replay = stream_from_json(flight.answer_json(), include_usage) if client_stream else None
        if replay is not None:
            await out.complete(200, replay, [*SSE_HEADERS, *extra])
        else:
            await out.complete(200, flight.answer_json(), [*JSON_HEADERS, *extra])
        return None
    await out.start(200, [*SSE_HEADERS, *extra])
    sent = 0
    while True:
        events = flight.events
        if sent < len(events):
            skip = -1 if include_usage else flight.usage_index
            batch = [event for index, event in enumerate(events[sent:], sent) if index != skip]
            sent = len(events)
            if batch:
                await out.body(b"".join(batch))
            continue  # more may have come while we were sending: look before waiting
        if flight.finished:
            break
        await flight.changed()
    await out.end(flight.stream_tail())
    return None


async def pass_through(
    client: Transport,
    out: Responder,
    receive: Receive,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    extra: list[tuple[bytes, bytes]],
) -> ProxyFailure | None:
    """Forward one request as it is and stream the answer back; returns the upstream's
    failure, if any, unanswered (the caller counts it and raises it for the handler).

    A client that goes away cancels the upstream request: the proxy's own server protocol
    says so at once (asgi.py `ServerWatch`); under another server the watch costs a timer,
    and a task only once the request has taken longer than its grace."""
    out.watch_disconnect(receive)
    try:
        async with client.request(method, url, body, headers) as response:
            if response.status >= 400:
                data = await response.read(_ERROR_BODY_LIMIT)
                return errors.failure_of(errors.UpstreamStatus(response.status, data))
            relayed = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers
                if name in _RELAYED_HEADERS
            ]
            out.sse = response.content_type == "text/event-stream"
            if not out.sse and _declared_length(response.headers) <= _WHOLE_BODY_LIMIT:
                # A small answer of known length goes out whole: one write for the head and
                # one for the body, where a relayed one took a third (its chunked end).
                data = await response.read()
                await out.complete(response.status, data, [*relayed, *extra])
                return None
            await out.start(response.status, [*relayed, *extra])
            async for piece in response.chunks():
                await out.body(piece)
            await out.end()
            return None
    except errors.UPSTREAM_FAILURES as error:
        return errors.failure_of(error)


def _declared_length(headers: list[tuple[str, str]]) -> int:
    """The answer's Content-Length; more than any whole-body limit when it has none (a
    chunked or read-to-close answer) or an unreadable one."""
    for name, value in headers:
        if name == "content-length":
            return int(value) if value.isdigit() else _UNKNOWN
    return _UNKNOWN
