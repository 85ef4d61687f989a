"""What the cache does with one request: its key, whether to look up, whether to store.

Pure functions of the route, the parsed body, the Cache-Control header and the config's
`cache_mode`. The key covers the route and the body in canonical form (sorted keys), leaving
out what does not change the answer: `stream`, `stream_options`, `user`, the LiteLLM-style
`cache` controls and every client header (x-stainless-*, User-Agent, Authorization). So a
streamed and a non-streamed request for the same answer share one entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = [
    "CACHEABLE_ROUTES",
    "STREAMABLE_ROUTES",
    "CacheDecision",
    "cache_key",
    "decide",
    "is_deterministic",
]

CacheMode = Literal["all", "deterministic", "off"]

# Routes whose 200 answers are a pure function of the request body.
STREAMABLE_ROUTES = frozenset({"chat/completions", "completions"})
CACHEABLE_ROUTES = STREAMABLE_ROUTES | {"embeddings", "rerank", "score"}
# Body fields that change how an answer is delivered, not what it is.
_NOT_IN_KEY = ("stream", "stream_options", "user", "cache")
# Routes that return the same answer for the same input whatever the sampling settings.
_ALWAYS_DETERMINISTIC = frozenset({"embeddings", "rerank", "score"})


@dataclass(frozen=True, slots=True)
class CacheDecision:
    """`lookup`: serve a hit if there is one; `store`: keep a complete 200 answer."""

    key: str
    lookup: bool
    store: bool
    ttl: float | None = None

    @property
    def bypass(self) -> bool:
        return not self.lookup


def cache_key(route: str, body: dict[str, Any], scope: str | None = None) -> str:
    """32 hex characters naming the answer to `body` on `route`; `scope` (when several
    upstreams are configured: who answers, and its model) is part of the key."""
    canonical = {name: value for name, value in body.items() if name not in _NOT_IN_KEY}
    if scope is not None:
        canonical["__upstream__"] = scope
    controls = body.get("cache")
    if isinstance(controls, dict) and controls.get("namespace"):
        canonical["__namespace__"] = str(controls["namespace"])
    digest = hashlib.blake2b(route.encode(), digest_size=16)
    digest.update(b"\0")
    digest.update(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def is_deterministic(route: str, body: dict[str, Any]) -> bool:
    """Temperature 0 or a seed (or a route that has no sampling at all)."""
    if route in _ALWAYS_DETERMINISTIC:
        return True
    if body.get("seed") is not None:
        return True
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and temperature == 0


def _header_directives(cache_control: str | None) -> set[str]:
    if not cache_control:
        return set()
    return {part.strip().split("=")[0].lower() for part in cache_control.split(",")}


def decide(
    route: str,
    body: dict[str, Any],
    cache_control: str | None,
    mode: CacheMode,
    scope: str | None = None,
) -> CacheDecision:
    """The cache's decision for one request; see the module docstring (`scope`: `cache_key`)."""
    key = cache_key(route, body, scope)
    if mode == "off" or route not in CACHEABLE_ROUTES:
        return CacheDecision(key, lookup=False, store=False)
    if mode == "deterministic" and not is_deterministic(route, body):
        return CacheDecision(key, lookup=False, store=False)
    directives = _header_directives(cache_control)
    controls = body.get("cache")
    controls = controls if isinstance(controls, dict) else {}
    no_store = "no-store" in directives or bool(controls.get("no-store"))
    no_cache = "no-cache" in directives or bool(controls.get("no-cache"))
    ttl = controls.get("ttl")
    ttl_seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else None
    if no_store:
        return CacheDecision(key, lookup=False, store=False)
    return CacheDecision(key, lookup=not no_cache, store=True, ttl=ttl_seconds)
