"""Noticing a client that left (forward/asgi.py): told by the proxy's own server protocol
(`ServerWatch`), or found by reading `receive` under any other server (`DisconnectWatch`).
The proxy's processes in test_proxy_cache.py hang up on it for real; here each watch is
driven alone, with the event loop's own clock and generous waits."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from podmgr.proxy.forward.asgi import DisconnectWatch, Responder, ServerWatch
from podmgr.proxy.protocol import CLIENT_GONE


async def _nothing_sent(message: MutableMapping[str, Any]) -> None:
    raise AssertionError(f"nothing is sent here: {message}")


async def _wait_to_be_cancelled(out: Responder) -> bool:
    """Wait (at most 30 s) for the watch to cancel this task; True if it did."""
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        return out.disconnected
    return False


def test_under_the_proxys_protocol_the_server_tells_of_a_lost_client() -> None:
    async def run() -> tuple[bool, bool]:
        scope: dict[str, Any] = {"type": "http", CLIENT_GONE: None}
        out = Responder(_nothing_sent, scope)
        out.watch_disconnect(_never_received)
        watch = scope[CLIENT_GONE]
        assert isinstance(watch, ServerWatch) and out.watch is watch
        asyncio.get_running_loop().call_soon(watch.client_gone)  # as connection_lost does
        return await _wait_to_be_cancelled(out), out.disconnected

    assert asyncio.run(run()) == (True, True)


def test_a_stopped_server_watch_cancels_nothing() -> None:
    async def run() -> bool:
        scope: dict[str, Any] = {"type": "http", CLIENT_GONE: None}
        out = Responder(_nothing_sent, scope)
        out.watch_disconnect(_never_received)
        out.stop_watch()  # the answer is complete: a lost connection now is no one's loss
        scope[CLIENT_GONE].client_gone()
        await asyncio.sleep(0.05)
        return out.disconnected

    assert asyncio.run(run()) is True  # told, and still not cancelled (this line ran)


async def _never_received() -> dict[str, Any]:
    raise AssertionError("the server tells; receive is not read")


@pytest.mark.parametrize("scope", [None, {"type": "http"}])
def test_under_another_server_a_lost_client_is_found_through_receive(
    scope: dict[str, Any] | None,
) -> None:
    async def run() -> bool:
        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        out = Responder(_nothing_sent, scope)
        out.watch_disconnect(receive)
        assert isinstance(out.watch, DisconnectWatch)
        return await _wait_to_be_cancelled(out)

    assert asyncio.run(run()) is True
