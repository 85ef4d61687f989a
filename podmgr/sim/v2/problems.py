"""REST v2 error answers: RFC 9457 `application/problem+json` bodies, and what status each
world failure gets.

RunPod REST API v2 (openapi.json, schema ErrorResponse; responses UnauthorizedError,
ForbiddenError, BadRequestError, NotFoundError, UnprocessableEntityError,
TooManyRequestsError): `{"title", "status", "detail", "errors"?}`, `errors` listing
request-validation failures (example `"$: additional properties 'bogus' not allowed"`).
"In v2, errors follow the RFC 9457 problem format" (RunPod docs,
api-reference-v2/migrate-from-v1.mdx).

Statuses of world failures (podmgr/sim/operations.py `SimApiError.kind`), from createPod's
table ("Which failures are worth retrying"): capacity and cross-field rules 400 (capacity
"carries no machine-readable code of its own, only a human-readable detail"), 402
insufficient balance, 403 a key without access, 404 unknown pod, template or network
volume, 409 an action not valid for the pod's status (podAction), 5xx RunPod failing.
A fault with `page_status` answers an HTML error page instead, as Cloudflare in front of
RunPod does (RUNPOD_FACTS.md, "Errors as they arrive").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from podmgr.sim.operations import SimApiError
from podmgr.sim.reply import cloudflare_page

__all__ = ["PROBLEM_TYPE", "json_answer", "problem", "problem_of"]

PROBLEM_TYPE = "application/problem+json"
_STATUS_OF_KIND: Mapping[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "bad_request": 400,
    "not_found": 404,
    "capacity": 400,
    "transient": 500,
}


def json_answer(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem(
    status: int,
    detail: str,
    *,
    errors: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An ErrorResponse body; `title` is the status's reason phrase (the document's
    examples: "Not Found", "Too Many Requests", "Unprocessable Entity")."""
    body: dict[str, Any] = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = list(errors)
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=PROBLEM_TYPE, headers=headers
    )


def problem_of(error: SimApiError) -> web.Response:
    """A world failure as its REST v2 answer."""
    if error.page_status is not None:
        return web.Response(
            text=cloudflare_page(error.page_status),
            status=error.page_status,
            content_type="text/html",
        )
    return problem(error.rest_status or _STATUS_OF_KIND[error.kind], error.message)
