"""What the cache does with one request: its key, whether to look up, whether to store.

Pure functions of the route, the parsed body, the Cache-Control header and the config's
`cache_mode`. The key covers the route and the body in canonical form (sorted keys), leaving
out what does not change the answer: `stream`, `stream_options`, `user`, the LiteLLM-style
`cache` controls and every client header (x-stainless-*, User-Agent, Authorization). So a
streamed and a non-streamed request for the same answer share one entry.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any, Literal, NamedTuple

import orjson

__all__ = [
    "CACHEABLE_ROUTES",
    "STREAMABLE_ROUTES",
    "CacheDecision",
    "cache_key",
    "cache_scope",
    "decide",
    "is_deterministic",
]

CacheMode = Literal["all", "deterministic", "off"]

# Routes whose 200 answers are a pure function of the request body.
STREAMABLE_ROUTES = frozenset({"chat/completions", "completions"})
CACHEABLE_ROUTES = STREAMABLE_ROUTES | {"embeddings", "rerank", "score"}
# Body fields that change how an answer is delivered, not what it is.
_NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "cache"})
# Routes that return the same answer for the same input whatever the sampling settings.
_ALWAYS_DETERMINISTIC = frozenset({"embeddings", "rerank", "score"})
# What a key's digest starts with, per cacheable route (others are encoded each time).
_PREFIXES = {route: (route + "\0").encode() for route in CACHEABLE_ROUTES}


class CacheDecision(NamedTuple):
    """`lookup`: serve a hit if there is one; `store`: keep a complete 200 answer.
    (A named tuple: made for every request, at a third of a frozen dataclass's cost.)"""

    key: str
    lookup: bool
    store: bool
    ttl: float | None = None

    @property
    def bypass(self) -> bool:
        return not self.lookup


_OFF = CacheDecision("", lookup=False, store=False)


def cache_scope(upstream: str, upstream_model: str) -> str:
    """The part of a key that says who answers: the upstream's name and the model id it
    is asked for ("" for a request without a model)."""
    return f"{upstream}\0{upstream_model}"


def cache_key(route: str, body: dict[str, Any], scope: str | None = None) -> str:
    """32 hex characters naming the answer to `body` on `route`; `scope` (`cache_scope`:
    who answers, and its model) is part of the key.

    The key is the BLAKE2b-128 of `route`, a NUL and the canonical JSON (sorted keys) of
    the body without `_NOT_IN_KEY`, with `__upstream__` (the scope) and `__namespace__`
    (the `cache` controls' namespace) added. Keys are stored in the disk cache, so this
    form is a format: changing it makes every stored answer miss."""
    if _NOT_IN_KEY.isdisjoint(body):
        canonical = body.copy()
    else:
        canonical = {name: value for name, value in body.items() if name not in _NOT_IN_KEY}
    if scope is not None:
        canonical["__upstream__"] = scope
    if "cache" in body:
        controls = body["cache"]
        if isinstance(controls, dict) and controls.get("namespace"):
            canonical["__namespace__"] = str(controls["namespace"])
    prefix = _PREFIXES.get(route) or (route + "\0").encode()
    data = prefix + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return blake2b(data, digest_size=16).hexdigest()


def is_deterministic(route: str, body: dict[str, Any]) -> bool:
    """Temperature 0 or a seed (or a route that has no sampling at all)."""
    if route in _ALWAYS_DETERMINISTIC:
        return True
    if body.get("seed") is not None:
        return True
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and temperature == 0


def _header_directives(cache_control: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cache_control.split(",")}


def decide(
    route: str,
    body: dict[str, Any],
    cache_control: str | None,
    mode: CacheMode,
    scope: str | None = None,
) -> CacheDecision:
    """The cache's decision for one request; see the module docstring (`scope`: `cache_key`).

    A request with neither a Cache-Control header nor `cache` controls in its body (most
    of them) is looked up and stored without reading any directive."""
    if mode == "off":  # nothing is looked up or stored, so nothing needs a key
        return _OFF
    key = cache_key(route, body, scope)
    if route not in CACHEABLE_ROUTES:
        return CacheDecision(key, False, False)
    if mode == "deterministic" and not is_deterministic(route, body):
        return CacheDecision(key, False, False)
    controls = body.get("cache") if "cache" in body else None
    if not cache_control and controls is None:
        return CacheDecision(key, True, True)
    return _directed(key, cache_control, controls if isinstance(controls, dict) else {})


def _directed(key: str, cache_control: str | None, controls: dict[str, Any]) -> CacheDecision:
    """The decision when the header or the body's `cache` controls say something."""
    directives = _header_directives(cache_control) if cache_control else set()
    no_store = "no-store" in directives or bool(controls.get("no-store"))
    no_cache = "no-cache" in directives or bool(controls.get("no-cache"))
    ttl = controls.get("ttl")
    ttl_seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else None
    if no_store:
        return CacheDecision(key, lookup=False, store=False)
    return CacheDecision(key, lookup=not no_cache, store=True, ttl=ttl_seconds)
