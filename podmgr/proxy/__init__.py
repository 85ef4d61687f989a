"""The caching OpenAI-compatible reverse proxy in front of the pod's vLLM server.

Public surface: `create_app(config, client=None)` (one FastAPI app) and `run_proxy(config)`
(foreground uvicorn server until SIGTERM/SIGINT, `server.py`, on uvicorn's httptools
protocol with a response in one write and one keep-alive timer a connection,
`protocol.py`). The folders are the rooms:
`forward/` the /v1 request path, `upstream/` where and how requests go out, `cache/` the
stored answers, `observe/` what a person or Prometheus reads; `app.py` wires them.

A request's way (intake -> plan -> effects): `app.py` builds every part first and mounts
`forward/handler.py`'s `V1Handler` at /v1, ahead of FastAPI's own code. The handler hands
the ASGI scope and body to `forward/intake.py`, which reads them once into an immutable
`ProxyRequest` (target, headers, client's key, size, JSON body, model, stream flag, cache
directives) or raises `Refused`; `forward/plan.py` then decides, as a pure function of that
request and a `Snapshot` of the upstreams (`upstream/router.py`) and cache settings, whether
to wake the pod (`wake.py`) and one action of `forward/effects.py`: `Refuse`, `ListModels`
(`forward/routing.py`), `PassThrough` (`forward/relay.py`), or `Answer`, whose attempts
carry each upstream's body and cache decision (`cache/key.py`). The handler runs the action:
`Answer` serves a hit from `cache/store.py` or joins or starts a flight through
`forward/coalescer.py` (`forward/flight.py` sends what `upstream/outgoing.py` makes of the
body through the route's `Transport`, `upstream/transport.py`; a flight nobody else can join
runs in the request's own task), or, when nobody could join and nothing is stored and the
body goes as it is, makes the call alone (`forward/alone.py`: no flight), and fails over to
the next attempt while nothing has reached the client; `forward/relay.py` feeds the client
(`forward/sse.py` shapes events and JSON). Every failure becomes OpenAI's error shape in one
module, `openai_errors.py` (a transport error, an upstream's status, a refusal); the rest
return or raise it typed, and a request refused or failed anywhere raises `Refused`,
answered once, by the handler (the failure while nothing is sent, else an error event that
ends the stream). When the request ends, the handler counts one `observe/outcome.py` record.
"""

from podmgr.proxy.app import ProxyApp, create_app
from podmgr.proxy.server import run_proxy

__all__ = ["ProxyApp", "create_app", "run_proxy"]
