"""The caching OpenAI-compatible reverse proxy in front of the pod's vLLM server.

Public surface: `create_app(config)` (an ASGI app; its `ctx` holds the parts) and
`run_proxy(config)` (foreground server until SIGTERM/SIGINT). Modules, one concept each:
app (factory, routes), forward (the /v1 hot path), flight (one upstream call, coalescing),
relay (feeding clients), outgoing (what goes upstream), sse (events, assembling JSON),
upstream (where to send), cache_key / cache_entry / cache_db / cache_store (the cache),
metrics, stats, health, dashboard, prewarm, asgi (raw ASGI helpers), server.
"""

from podmgr.proxy.app import ProxyApp, create_app
from podmgr.proxy.server import run_proxy

__all__ = ["ProxyApp", "create_app", "run_proxy"]
