"""Deterministic "generation" for the simulated vLLM: the same request gives the same bytes.

Words are drawn by a random generator seeded with a hash of the canonical request body
(sorted keys; `stream` and `stream_options` left out, so a streamed and a plain request
give the same text). Ids and `created` derive from the same hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Generation",
    "count_tokens",
    "detokenize",
    "embed",
    "generate",
    "request_created",
    "request_digest",
    "token_ids",
]

# fmt: off
_WORDS = (
    "the", "def", "return", "value", "cache", "pod", "model", "token", "stream", "request",
    "response", "async", "await", "import", "class", "self", "data", "list", "dict", "None",
    "True", "False", "for", "in", "if", "else", "while", "try", "except", "yield", "lambda",
    "config", "state", "proxy", "server", "client", "index", "count", "total", "error",
    "result", "queue", "batch", "limit", "timeout", "retry", "health", "ready", "load", "pull",
    "image", "port", "route", "path", "key", "python", "function", "module", "test", "assert",
    "print", "len", "range", "open", "file", "line", "bytes", "json",
)
# fmt: on
_TOKEN = re.compile(r"\w+|[^\w\s]")
_IGNORED_KEYS = ("stream", "stream_options")
_CREATED_BASE = 1_700_000_000


def request_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 hex of the request without its streaming switches."""
    canonical = {key: value for key, value in body.items() if key not in _IGNORED_KEYS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def request_created(digest: str) -> int:
    """A stable `created` timestamp for the request."""
    return _CREATED_BASE + int(digest[:8], 16) % 100_000_000


def count_tokens(text: str) -> int:
    """A rough token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def token_ids(text: str) -> list[int]:
    """Stable ids of the tokens `count_tokens` counts (a 32,000-entry vocabulary)."""
    return [
        int(hashlib.sha256(piece.encode()).hexdigest()[:8], 16) % 32000
        for piece in _TOKEN.findall(text)
    ]


def detokenize(ids: Sequence[int]) -> str:
    """Text for token ids: not the inverse of `token_ids`, only stable."""
    return " ".join(_WORDS[number % len(_WORDS)] for number in ids)


@dataclass(frozen=True)
class Generation:
    """One choice: the text in the pieces a stream sends, and why it ended."""

    index: int
    pieces: tuple[str, ...]
    finish_reason: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _apply_stop(pieces: list[str], stops: Sequence[str]) -> tuple[list[str], bool]:
    text = "".join(pieces)
    cut = min((text.find(stop) for stop in stops if stop and stop in text), default=-1)
    if cut < 0:
        return pieces, False
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) >= cut:
            if cut - length > 0:
                kept.append(piece[: cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, True


def generate(
    digest: str, index: int, max_tokens: int | None, stop: Sequence[str] = ()
) -> Generation:
    """Choice `index` of the request with this digest, honouring max_tokens and stop."""
    rng = random.Random(f"{digest}:{index}")
    natural = rng.randint(8, 32)
    length = natural if max_tokens is None else min(natural, max_tokens)
    pieces = [" " + rng.choice(_WORDS) for _ in range(length)]
    if pieces:
        pieces[0] = pieces[0].lstrip().capitalize()
    pieces, stopped = _apply_stop(pieces, stop)
    finish = "stop" if stopped or max_tokens is None or natural <= max_tokens else "length"
    return Generation(index, tuple(pieces), finish)


def embed(text: str, dimensions: int = 32) -> list[float]:
    """A unit vector derived from the text's hash."""
    seed = hashlib.sha256(text.encode()).digest()
    rng = random.Random(seed)
    vector = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]
