"""How RunPod's failures map to podmgr's exception tree, for both of RunPod's APIs.

Decisions come from the HTTP status, where the request went (a pod's own resource or
not) and RunPod's error body, never from substrings of arbitrary messages: a "not found"
for a template or a network volume is not a gone pod (issue 10, finding 5). The only
texts matched are RunPod's own capacity wordings, its generic GraphQL error and its
GraphQL permission error, each cited in ../shared/RUNPOD_FACTS.md:

    401, 403                      -> AuthError (dstack treats 403 as bad credentials too)
    402, "insufficient balance"   -> BalanceError (the account is at $0)
    a capacity wording            -> CapacityError (whatever the status: try the next GPU)
    429, 5xx, network, timeout    -> TransientApiError (retried)
    404 on /pods/{podId}...       -> PodGoneError
    anything else                 -> ApiError naming the request, the status and the message
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    CapacityError,
    PodGoneError,
    PodmgrError,
    TransientApiError,
)

__all__ = [
    "GRAPHQL_GENERIC_ERROR",
    "GRAPHQL_UNAUTHORIZED",
    "classify_graphql_message",
    "classify_status",
    "error_message",
    "is_balance",
    "is_capacity",
]

# RunPod's wordings for "no machine for this request" (RUNPOD_FACTS.md, "Errors as they
# arrive" and "Errors and states that real RunPod produces"): create's two variants ("...
# with the requested specifications." / "... with enough disk space."), a host that cannot
# take the pod, and resume's pinned host without free GPUs.
_CAPACITY_WORDINGS = (
    "there are no longer any instances available",
    "this machine does not have the resources to deploy this pod",
    "there are not enough free gpus on the host machine",
)
# GraphQL answers these with HTTP 200 (RUNPOD_FACTS.md, "Errors as they arrive").
GRAPHQL_GENERIC_ERROR = "Something went wrong. Please try again later or contact support."
GRAPHQL_UNAUTHORIZED = "Unauthorized"

_HTTP_MESSAGE_CHARS = 300

# An account at $0: RunPod's API v2 documents HTTP 402 "Insufficient balance. Stop; no
# candidate will succeed." for a create (RunPod docs, api-reference-v2/openapi.json,
# CreatePod). v1 documents no status or wording for it (RunPod OpenAPI v1; the billing
# page, accounts-billing/billing.mdx, only says what happens): podmgr takes 402, or that
# wording under any status, as the sign.
_BALANCE_WORDING = "insufficient balance"
PAYMENT_REQUIRED = 402
_BALANCE_ADVICE = (
    "the RunPod account's balance is at $0: RunPod stops every pod then and starts none "
    "(RunPod docs, accounts-billing/billing); add funds or enable auto-pay, then `podmgr up`"
)


def is_balance(message: str) -> bool:
    """True for RunPod's insufficient-balance wording."""
    return _BALANCE_WORDING in message.lower()


def is_capacity(message: str) -> bool:
    """True for RunPod's "no instances / no resources / no free GPUs" wordings."""
    lowered = message.lower()
    return any(wording in lowered for wording in _CAPACITY_WORDINGS)


def error_message(body: Any, fallback: str) -> str:
    """RunPod's message from an error body: `{"error": ...}`, `{"message": ...}` (the
    document's UnauthorizedError) or GraphQL's `{"errors": [{"message": ...}]}`; a body
    that is not JSON (an HTML 502 page) gives `fallback`."""
    if isinstance(body, Mapping):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            return str(errors[0].get("message") or fallback)
    if isinstance(body, str) and body.strip() and not body.lstrip().startswith("<"):
        return body.strip()[:_HTTP_MESSAGE_CHARS]
    return fallback


def classify_status(status: int, message: str, *, what: str, pod_resource: bool) -> PodmgrError:
    """The error for an HTTP answer `status` with RunPod's `message` to the request `what`
    (e.g. "POST /pods"); `pod_resource`: the request was for one pod's own path."""
    detail = f"RunPod answered {status} to {what}: {message}"
    if status == 401:
        return AuthError(f"{detail}; RunPod rejected the API key (RUNPOD_API_KEY)")
    if status == 403:
        return AuthError(
            f"{detail}; the API key (RUNPOD_API_KEY) may not do this "
            "(a read-only key?): give it read/write permission"
        )
    if status == PAYMENT_REQUIRED or is_balance(message):
        return BalanceError(f"{detail}; {_BALANCE_ADVICE}")
    if is_capacity(message):
        return CapacityError(message)
    if status == 429:  # rate limited: refused before it did anything
        return TransientApiError(detail, may_have_applied=False)
    if status >= 500:
        return TransientApiError(detail)
    if status == 404 and pod_resource:
        return PodGoneError(detail)
    return ApiError(detail)


def classify_graphql_message(message: str, *, what: str) -> PodmgrError:
    """The error for a GraphQL `errors[0].message` that arrived with HTTP 200."""
    if message == GRAPHQL_UNAUTHORIZED:
        return AuthError(
            f"RunPod refused {what} ({message}): the API key (RUNPOD_API_KEY) lacks permission"
        )
    if is_balance(message):
        return BalanceError(f"RunPod refused {what}: {message}; {_BALANCE_ADVICE}")
    if is_capacity(message):
        return CapacityError(message)
    if message.startswith(GRAPHQL_GENERIC_ERROR[:20]):
        return TransientApiError(f"RunPod failed {what}: {message}")
    return ApiError(f"RunPod refused {what}: {message}")
