"""The caching OpenAI-compatible reverse proxy in front of the pod's vLLM server.

Public surface: `create_app(config, client=None)` (one FastAPI app) and `run_proxy(config)`
(foreground uvicorn server until SIGTERM/SIGINT, `server.py`). The folders are the rooms:
`forward/` the /v1 request path, `upstream/` where and how requests go out, `cache/` the
stored answers, `observe/` what a person or Prometheus reads; `app.py` wires them.

A request's way: `app.py` builds every part first and mounts `forward/handler.py`'s
`V1Handler` at /v1, ahead of FastAPI's own code. The handler checks the request
(`forward/checks.py`, `forward/auth.py`, reading the body with `forward/asgi.py`), asks
`cache/key.py` whether to look up and store, and answers a hit from `cache/store.py`. A miss
joins or starts a flight through `forward/coalescer.py`; the flight (`forward/flight.py`)
sends what `upstream/outgoing.py` makes of the request to the address from
`upstream/resolver.py` through a `Transport` (`upstream/transport.py`; by default
`upstream/client.py`, or `upstream/aiohttp_transport.py`) and records the answer.
`forward/relay.py` feeds the client from the flight (`forward/sse.py` shapes events and
JSON), or passes any other request straight through. When the flight ends, the coalescer
stores a complete answer in the cache; when the request ends, the handler counts one
`observe/outcome.py` record. Failures anywhere are answered in OpenAI's error shape
(`openai_errors.py`).
"""

from podmgr.proxy.app import ProxyApp, create_app
from podmgr.proxy.server import run_proxy

__all__ = ["ProxyApp", "create_app", "run_proxy"]
