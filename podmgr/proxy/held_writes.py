"""uvicorn's httptools protocol with a response's writes sent together: one send, not two.

uvicorn writes a response's head to the socket the moment the app sends
`http.response.start`, and its body at `http.response.body`: two `send` system calls for
every answer, and with uvloop each is made at once. They were the largest single cost of a
proxied request (py-spy under wrk: `RequestResponseCycle.send` was 29 % of a minimal
forwarder's samples, `docs/bench.md`).

`HeldWritesProtocol` is the same protocol (`uvicorn.Config(http=...)` takes a protocol
class) whose transport holds what is written during one step of the event loop and sends
it as one write when that step ends (`loop.call_soon`): a head and a body written by one
task without waiting in between leave in one `send`. Nothing waits longer than the loop's
current step, so a stream's events still leave as they are written; `close()` sends what
is held first. Everything else (reading, flow control, `get_extra_info`) is the wrapped
transport's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeldWrites", "HeldWritesProtocol"]


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


class HeldWritesProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through `HeldWrites` (module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeldWrites(transport, self.loop)  # type: ignore[assignment]
