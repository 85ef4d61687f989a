"""The proxy's HTTP server protocol: uvicorn's httptools protocol without three of its costs.

`ProxyProtocol` is the protocol uvicorn serves the proxy with (`uvicorn.Config(http=...)`
takes a protocol class); it changes three things, each found by profiling a pass-through
request under load (`docs/bench.md`), and otherwise nothing uvicorn does with a request.

- **A response leaves in one write.** uvicorn writes a response's head to the socket the
  moment the app sends `http.response.start`, and its body at `http.response.body`: two
  `send` system calls for every answer, made at once under uvloop (py-spy:
  `RequestResponseCycle.send` was 29 % of a minimal forwarder's samples). Here the
  transport (`HeldWrites`) holds what is written during one step of the event loop and
  sends it as one write when that step ends (`loop.call_soon`). Nothing waits longer than
  the loop's current step, so a stream's events still leave as they are written;
  `close()` sends what is held first.
- **A client that leaves is told at once.** Each request's scope holds the key
  `CLIENT_GONE` (None). A handler that must stop work its client no longer waits for
  (`forward/asgi.py` `ServerWatch`) puts an object there; when the connection is lost
  before the response is complete, `connection_lost` calls its `client_gone()`. Without
  it, the handler learns of a lost client only by reading `receive` from a task of its
  own (`DisconnectWatch`, still used under other servers), which cost a pass-through
  several percent of its throughput under load (`docs/bench.md`).
- **One keep-alive timer per connection, not one per request.** uvicorn arms a timer when
  a response is complete (to close a connection idle for `timeout_keep_alive` seconds) and
  cancels it when the next request arrives. Under uvloop each timer is a libuv handle made
  and closed, and these cost a tenth of a pass-through's CPU time. Here a connection's
  timer is made when it first goes idle and looks when it fires: a connection idle for
  the whole keep-alive time is closed, as uvicorn would; one that served a request since
  is looked at again when its time is up; a busy one is armed again by its response's end.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The scope key a handler fills to be told when its client's connection is lost.
CLIENT_GONE = "podmgr.client_gone"


class ClientGoneListener(Protocol):
    """What a handler puts at `CLIENT_GONE` (forward/asgi.py `ServerWatch`)."""

    def client_gone(self) -> None: ...


__all__ = ["CLIENT_GONE", "ClientGoneListener", "HeldWrites", "ProxyProtocol"]


class HeldWrites:
    """A transport that holds writes until the event loop's current step ends."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        """Send what is held now (a closed connection drops it, as a write would)."""
        held = self._held
        if not held:
            return
        self._held = []
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Idle:
    """What stands in uvicorn's keep-alive timer slot while a connection is idle: uvicorn
    "cancels" it when a request arrives, which only clears the slot."""

    __slots__ = ()

    def cancel(self) -> None:
        return None


_IDLE = _Idle()


class ProxyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with held writes, a lost client told, and a lazy
    keep-alive timer."""

    _idle_timer: asyncio.TimerHandle | None = None
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldWrites(transport, self.loop)  # type: ignore[assignment]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CLIENT_GONE] = None  # type: ignore[literal-required]

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and not cycle.response_complete:
            told = cast(ClientGoneListener | None, cycle.scope.get(CLIENT_GONE))
            if told is not None:
                told.client_gone()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def on_response_complete(self) -> None:
        if self.pipeline or self.transport.is_closing():
            # A pipelined request starts now, and no timer is armed: uvicorn's own code.
            super().on_response_complete()
            return
        # uvicorn's own steps for the last response (uvicorn 0.30 and 0.55 alike), with the
        # keep-alive timer made only when the connection has none.
        self.server_state.total_requests += 1
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        self.timeout_keep_alive_task = _IDLE  # type: ignore[assignment]
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._look_idle)

    def _idle(self) -> bool:
        """Idle since `_idle_since`: no request arrived (uvicorn clears the slot when one does)."""
        slot: object = self.timeout_keep_alive_task
        return slot is _IDLE

    def _look_idle(self) -> None:
        self._idle_timer = None
        if not self._idle() or self.transport.is_closing():
            return  # serving a request: its response's end arms the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._look_idle)
            return
        self.timeout_keep_alive_task = None
        self.timeout_keep_alive_handler()
