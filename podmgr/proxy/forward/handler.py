"""The `/v1` handler: a raw ASGI callable mounted at /v1, the proxy's hot path.

Each request goes intake -> plan -> effects: `intake.read_request` reads and checks the
scope and body once into a `ProxyRequest`; `plan.plan` (pure) decides from it and a
`Snapshot` of the upstreams and cache settings whether to wake the pod and what to do
(a repeated cacheable request gets its plan from `memo.PlanMemo`, the same plan again);
the plan's action carries itself out (`effects.py`). A request refused or failed anywhere
raises `Refused` and is answered here, in one place (openai_errors.py made the answer);
nothing here answers 500 on purpose. When
the request is over, its one `Outcome` is recorded (observe.outcome).
"""

from __future__ import annotations

import asyncio
import re

from starlette.types import Receive, Scope, Send

from podmgr.logs import get_logger
from podmgr.proxy import openai_errors as errors
from podmgr.proxy.cache.key import CacheMode
from podmgr.proxy.cache.store import CacheStore
from podmgr.proxy.forward.asgi import Responder
from podmgr.proxy.forward.coalescer import Coalescer
from podmgr.proxy.forward.effects import Effects, Exchange
from podmgr.proxy.forward.intake import IntakeRules, read_request
from podmgr.proxy.forward.memo import PlanMemo
from podmgr.proxy.forward.plan import Snapshot
from podmgr.proxy.observe.outcome import Recorder
from podmgr.proxy.openai_errors import Refused
from podmgr.proxy.upstream.router import Router
from podmgr.proxy.wake import Waker

__all__ = ["V1Handler"]

log = get_logger("proxy.forward")
_SLASHES = re.compile(r"/{2,}")


class V1Handler:
    """ASGI callable for every path under /v1 (mounted there; `scope["path"]` is whole)."""

    def __init__(
        self,
        *,
        router: Router,
        cache: CacheStore,
        coalescer: Coalescer,
        recorder: Recorder,
        api_keys: tuple[bytes, ...],
        max_body_bytes: int,
        cache_mode: CacheMode,
        cache_fallbacks: bool = True,
        waker: Waker | None = None,
    ) -> None:
        self.router = router
        self.effects = Effects(
            router, cache, coalescer, waker if waker is not None and waker.enabled else None
        )
        self.cache_fallbacks = cache_fallbacks
        self.recorder = recorder
        self.rules = IntakeRules(api_keys, max_body_bytes)
        self.cache_mode = cache_mode
        self._last = Snapshot((), None, False, cache_mode, cache_fallbacks, False)
        self.memo = PlanMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if "//" in path:
            path = _SLASHES.sub("/", path)
        route = path[4:].strip("/")
        outcome = self.recorder.begin(route)
        out = Responder(send, scope)
        try:
            memo = self.memo
            request = await read_request(scope, receive, path, route, self.rules, memo.bodies)
            if request.model is not None:
                self.recorder.stats.saw_model(request.model, outcome.at)
            decided = memo.plan(request, self._snapshot())
            exchange = Exchange(request, receive, out, outcome)
            if decided.wake:
                exchange.blocked = self.effects.wake(decided.wake_pod)
            await decided.action.run(self.effects, exchange)
        except Refused as refused:
            await _answer(out, refused)
        except asyncio.CancelledError:
            if not out.disconnected:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            out.status = 499
        except Exception:
            log.exception("request_failed", route=route)
            if not out.started:
                await out.fail(errors.INTERNAL)
        finally:
            out.stop_watch()
            outcome.status = out.status
            outcome.failure = out.failure
            self.recorder.record(outcome)

    def _snapshot(self) -> Snapshot:
        """The upstreams and cache settings as they are now, for `plan` (rebuilt only
        when the router's snapshot changed)."""
        router = self.router
        upstreams = router.snapshot()
        if upstreams is not self._last.upstreams:
            self._last = Snapshot(
                upstreams=upstreams,
                pod_failure=router.resolver.current.failure,
                can_wake=self.effects.waker is not None,
                cache_mode=self.cache_mode,
                cache_fallbacks=self.cache_fallbacks,
                several=router.several,
            )
        return self._last


async def _answer(out: Responder, refused: Refused) -> None:
    """Answer a refusal: its failure while nothing has been sent; else end what was
    begun, a stream with the failure as an error event, any other body short."""
    failure = refused.failure
    if not out.started:
        await out.fail(failure, list(refused.headers))
    else:
        await out.end(failure.sse_event() if out.sse else b"")
