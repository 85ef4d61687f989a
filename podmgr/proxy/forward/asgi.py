"""Small raw-ASGI helpers for the `/v1` hot path: send the answer, and notice a client that
went away (the request itself is read by `intake.py`).

A client that went away is noticed in one of two ways. Served by the proxy's own protocol
(`podmgr/proxy/protocol.py`, whose scopes hold `CLIENT_GONE`), the server calls
`ServerWatch.client_gone` when the connection is lost: nothing runs per request but the
watch's making and stopping. Under any other ASGI server, `DisconnectWatch` reads
`receive` from a task of its own once the request has waited a grace period.

The `/v1` handler bypasses FastAPI's request and response objects (they cost more than the
work of a cache hit), so these few helpers stand in for them.
"""

from __future__ import annotations

import asyncio
import weakref

from starlette.types import Receive, Scope, Send

from podmgr.proxy.openai_errors import ProxyFailure
from podmgr.proxy.protocol import CLIENT_GONE

__all__ = ["DisconnectWatch", "Responder", "ServerWatch"]


# How long a request may wait before its client is watched (see DisconnectWatch).
WATCH_GRACE_SECONDS = 0.02


class ServerWatch:
    """Cancels the current task when the server says the client's connection was lost
    (and says that it did): the server holds it in the request's scope (`CLIENT_GONE`)
    and calls `client_gone`. Nothing is registered and no task or timer is made: under
    load, switching `DisconnectWatch` off saved 3-8 % of a pass-through's CPU per request
    (docs/bench.md), spent on clients that almost never leave."""

    __slots__ = ("_target", "disconnected")

    def __init__(self, scope: Scope) -> None:
        self.disconnected = False
        self._target = asyncio.current_task()
        scope[CLIENT_GONE] = self

    def client_gone(self) -> None:
        self.disconnected = True
        if self._target is not None:
            self._target.cancel()

    def stop(self) -> None:
        # The request's task holds this watch, and the scope it: dropping the task here
        # leaves no cycle for the garbage collector to find.
        self._target = None


class DisconnectWatch:
    """Cancels the current task when the client disconnects (and says that it did), under
    a server that does not tell (see `ServerWatch`).

    Used while waiting on the model server: an abandoned autocomplete request must cancel
    its upstream request at once, not when the upstream answer is finally complete.
    uvicorn also reports "disconnect" once the response is complete, so the watch is
    stopped before the last message is sent (`Responder` does that).

    The watching task starts only once the request has waited `WATCH_GRACE_SECONDS`: a
    task per request was the largest single cost of a pass-through request (about 15% of
    its throughput, measured with `python -m bench`), and most answers that a client would
    wait for only briefly are done by then. Nor does each request get a timer of its own
    (under uvloop each is a libuv handle made and closed, a sixth of a pass-through's CPU
    time with the client's read timers): `_Starter`, one per event loop, looks at the
    waiting watches every grace period. A client that leaves is noticed at most two grace
    periods late.
    """

    __slots__ = ("_receive", "_starter", "_target", "_task", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self.disconnected = False
        self._receive = receive
        self._target = asyncio.current_task()
        self._task: asyncio.Task[None] | None = None
        self._starter = _starter().add(self)

    def begin(self) -> None:
        """Start watching (`_Starter` calls it once the grace period has passed)."""
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                if self._target is not None:
                    self._target.cancel()
                return

    def stop(self) -> None:
        self._starter.discard(self)
        if self._task is not None:
            self._task.cancel()
        # The request's task holds this watch (through its Responder): dropping the task
        # here leaves no cycle for the garbage collector to find.
        self._target = None


class _Starter:
    """The watches of one event loop still in their grace period, oldest first, and the
    one timer that begins those whose grace has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[DisconnectWatch, float] = {}  # watch -> when it was made
        self._timer: asyncio.TimerHandle | None = None

    def add(self, watch: DisconnectWatch) -> _Starter:
        self._waiting[watch] = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(WATCH_GRACE_SECONDS, self._begin_due)
        return self

    def discard(self, watch: DisconnectWatch) -> None:
        self._waiting.pop(watch, None)

    def _begin_due(self) -> None:
        self._timer = None
        due = self._loop.time() - WATCH_GRACE_SECONDS
        waiting = self._waiting
        while waiting:
            watch, made = next(iter(waiting.items()))
            if made > due:
                break
            del waiting[watch]
            watch.begin()
        if waiting:
            self._timer = self._loop.call_later(WATCH_GRACE_SECONDS, self._begin_due)


_STARTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Starter] = (
    weakref.WeakKeyDictionary()
)


_last: list[_Starter] = []  # the one asked for last (a proxy has one loop)


def _starter() -> _Starter:
    """The running loop's `_Starter` (the last one asked for, most times: a weak dictionary's
    lookup makes a weak reference each time)."""
    loop = asyncio.get_running_loop()
    if _last and _last[0]._loop is loop:
        return _last[0]
    starter = _STARTERS.get(loop)
    if starter is None:
        starter = _STARTERS[loop] = _Starter(loop)
    _last[:] = [starter]
    return starter


class Responder:
    """Sends one response and remembers its status and whether it has started. `scope`: the
    request's, when the server tells of a lost client (`ServerWatch`)."""

    __slots__ = ("_send", "_told_in", "failure", "sse", "started", "status", "watch")

    def __init__(self, send: Send, scope: Scope | None = None) -> None:
        self._send = send
        self._told_in = scope if scope is not None and CLIENT_GONE in scope else None
        self.started = False
        self.status = 0
        self.sse = False
        self.failure: ProxyFailure | None = None
        self.watch: ServerWatch | DisconnectWatch | None = None

    def watch_disconnect(self, receive: Receive) -> None:
        told_in = self._told_in
        self.watch = DisconnectWatch(receive) if told_in is None else ServerWatch(told_in)

    @property
    def disconnected(self) -> bool:
        return self.watch is not None and self.watch.disconnected

    def stop_watch(self) -> None:
        if self.watch is not None:
            self.watch.stop()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        self.stop_watch()
        await self._send({"type": "http.response.body", "body": data})

    async def complete(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
        """A whole response with its content-length."""
        self.stop_watch()
        await self.start(status, [*headers, (b"content-length", str(len(body)).encode())])
        await self._send({"type": "http.response.body", "body": body})
        return status

    async def fail(
        self, failure: ProxyFailure, extra: list[tuple[bytes, bytes]] | None = None
    ) -> int:
        self.failure = failure
        return await self.complete(
            failure.status, failure.body, [*failure.headers(), *(extra or [])]
        )
