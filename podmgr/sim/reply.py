"""`Reply`: what a simulated pod answers before the edge (RunPod's proxy) sends it; error pages.

A reply is ready when its status and headers are known; a streamed body is produced
afterwards, chunk by chunk. The edge times the first part (524) and may cut the second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

__all__ = ["PASS_HEADER", "Reply", "cloudflare_page", "json_reply", "vllm_error"]

# Set on a guard-run pod's local answer (podmgr/sim/standin_vllm.py) when its middlewares let
# the request through to vLLM's routes: the simulated vLLM answers it (podmgr/sim/edge.py).
PASS_HEADER = "x-sim-to-vllm"


@dataclass
class Reply:
    """Status, headers and either a whole body or an async stream of chunks."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(data))


def vllm_error(
    message: str, status: int = 400, param: str | None = None, kind: str | None = None
) -> Reply:
    """vLLM v0.8.5's error answer, flat: {"object": "error", "message", "type", "param",
    "code"} (vllm/entrypoints/openai/protocol.py ErrorResponse, built by serving_engine.py
    `create_error_response`: type "BadRequestError" unless told, code the HTTP status).
    Only errors inside a stream are nested under "error" (`create_streaming_error_response`).
    """
    default_kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    body = {
        "object": "error",
        "message": message,
        "type": kind or default_kind,
        "param": param,
        "code": status,
    }
    return json_reply(body, status)


def cloudflare_page(status: int) -> str:
    """An HTML error page like the ones Cloudflare puts in front of RunPod."""
    phrase = "A timeout occurred" if status == 524 else _phrase(status)
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>\n"
        f"<body><center><h1>{status} {phrase}</h1></center><hr>"
        "<center>cloudflare</center></body></html>\n"
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
