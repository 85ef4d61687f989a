"""An upstream call one client makes alone: no `Flight`, no coalescer, the answer read whole.

A request nobody can join and whose answer nothing stores (the cache neither looks it up
nor keeps it: `cache_mode: off`, `no-store`, a request the cache never takes), from a
client that wants the answer whole, to an upstream that gets the body as it is (no edge
limit, so its answer is the JSON the client gets) needs none of what a `Flight` keeps for
others: a record of events to feed late joiners, waiters, a state for the coalescer. Its
own task sends it, reads the answer whole and hands it back to be sent. Measured in
process (an instant upstream, `bench/profile.py`'s way): the flight's machinery was about
a fifth of the proxy's own CPU time for such a request (`docs/bench.md`, 2026-12-07).

What happened is kept in `AloneCall`, with the attributes the coalescer counts for any
upstream call (`Coalescer.count`): the failure (not answered here: the caller may try the
next upstream), the usage the answer carried, how long the call took. A client that leaves
cancels its task, which closes the upstream connection (the `Transport` contract).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from podmgr.proxy import openai_errors as errors
from podmgr.proxy.forward.flight import UpstreamCall, usage_tokens
from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.upstream.transport import Transport

__all__ = ["AloneCall", "call_alone"]

_ERROR_BODY_LIMIT = 64 * 1024
_JSON = b"application/json"


@dataclass(slots=True)
class AloneCall:
    """One call made alone: its answer (`body`, sent with `content_type`) or its `failure`,
    and what the coalescer counts of every upstream call (the names a `Flight` has)."""

    call: UpstreamCall
    body: bytes = b""
    content_type: bytes = _JSON
    failure: ProxyFailure | None = None
    tokens: tuple[int, int] = (0, 0)  # prompt, completion (from the usage the answer carried)
    upstream_seconds: float = 0.0
    first_event_seconds: float | None = None  # never set: the answer is not a stream
    cancelled: bool = False  # never set: a cancelled call raises instead of returning


async def call_alone(client: Transport, call: UpstreamCall) -> AloneCall:
    """Send `call` and read its answer whole; any status but 200 and any transport error
    becomes the `failure` (openai_errors.failure_of), as a flight's would."""
    done = AloneCall(call)
    started = time.perf_counter()
    try:
        async with client.request("POST", call.url, call.body, call.headers) as response:
            if response.status != 200:
                data = await response.read(_ERROR_BODY_LIMIT)
                done.failure = errors.failure_of(errors.UpstreamStatus(response.status, data))
            else:
                done.body = await response.read()
                done.content_type = _content_type(response.headers)
                done.tokens = usage_tokens(done.body)
    except errors.UPSTREAM_FAILURES as error:
        done.failure = errors.failure_of(error)
    done.upstream_seconds = time.perf_counter() - started
    return done


def _content_type(headers: list[tuple[str, str]]) -> bytes:
    """The answer's Content-Type as the upstream sent it (JSON when it sent none)."""
    for name, value in headers:
        if name == "content-type":
            return value.encode("latin-1")
    return _JSON
