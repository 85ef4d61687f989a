"""How RunPod's failures map to podmgr's exception tree: REST v2 problems, and GraphQL.

REST v2 answers errors as RFC 9457 problem objects `{"title", "status", "detail",
"errors"?}` (RunPod OpenAPI v2, components.schemas.ErrorResponse); messages quote
`detail`. Decisions come from the HTTP status and the request, never from substrings of
arbitrary messages; the statuses follow the document's response tables:

    401                        -> AuthError (the key is wrong)
    402                        -> BalanceError (createPod: "insufficient balance", exit 11)
    403 on a create           -> PlacementError (createPod: no access to that pool: skip it)
    403 elsewhere              -> AuthError (the key may not do this; dstack treats 403 so too)
    400 on a create           -> PlacementError (createPod: "the combination could not be
                                  placed": capacity has no code of its own; next candidate)
    404 on /pods/{id}...       -> PodGoneError
    409                        -> ConflictError (an action the pod's status does not allow)
    422                        -> ContractError (the body broke the document: a podmgr bug,
                                  never retried; the `errors` list is quoted)
    429                        -> TransientApiError with `retry_after` (Retry-After seconds)
    5xx, network, timeout      -> TransientApiError (retried with backoff)
    anything else              -> ApiError naming the request, the status and the detail

GraphQL (spot pods only, through the `runpod` SDK) answers errors with HTTP 200 and
`errors[0].message`; `classify_graphql_message` reads RunPod's wordings cited in
../shared/RUNPOD_FACTS.md ("Errors as they arrive").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    CapacityError,
    ConflictError,
    ContractError,
    PlacementError,
    PodGoneError,
    PodmgrError,
    TransientApiError,
)

__all__ = [
    "BALANCE_ADVICE",
    "GRAPHQL_GENERIC_ERROR",
    "GRAPHQL_UNAUTHORIZED",
    "classify_graphql_message",
    "classify_status",
    "error_detail",
    "is_capacity",
]

# RunPod's wordings for "no machine for this request" (RUNPOD_FACTS.md, "Errors as they
# arrive"): GraphQL's create and resume answer them with HTTP 200.
_CAPACITY_WORDINGS = (
    "there are no longer any instances available",
    "this machine does not have the resources to deploy this pod",
    "there are not enough free gpus on the host machine",
)
GRAPHQL_GENERIC_ERROR = "Something went wrong. Please try again later or contact support."
GRAPHQL_UNAUTHORIZED = "Unauthorized"
_BALANCE_WORDING = "insufficient balance"
_MESSAGE_CHARS = 300

BALANCE_ADVICE = (
    "the RunPod account's balance is at $0: RunPod stops every pod then and starts none "
    "(RunPod docs, accounts-billing/billing); add funds or enable auto-pay, then `podmgr up`"
)


def is_capacity(message: str) -> bool:
    """True for RunPod's "no instances / no resources / no free GPUs" wordings."""
    lowered = message.lower()
    return any(wording in lowered for wording in _CAPACITY_WORDINGS)


def error_detail(body: Any, fallback: str) -> tuple[str, list[str]]:
    """(`detail`, `errors`) of a problem body; an HTML page or other text gives `fallback`
    (or its first line when it is short plain text)."""
    if isinstance(body, Mapping):
        detail = body.get("detail") or body.get("title") or body.get("message")
        errors = body.get("errors")
        listed = [str(item) for item in errors] if isinstance(errors, list) else []
        if isinstance(detail, str) and detail:
            return detail[:_MESSAGE_CHARS], listed
        return fallback, listed
    if isinstance(body, str) and body.strip() and not body.lstrip().startswith("<"):
        return body.strip()[:_MESSAGE_CHARS], []
    return fallback, []


def classify_status(
    status: int,
    body: Any,
    *,
    what: str,
    fallback: str,
    pod_resource: bool = False,
    create: bool = False,
    retry_after: float | None = None,
) -> PodmgrError:
    """The error for an HTTP answer `status` with `body` to the request `what` (e.g.
    "POST /pods"). `pod_resource`: the request was for one pod's own path; `create`: the
    request was a create (its 400/403 mean "try the next candidate")."""
    detail, errors = error_detail(body, fallback)
    said = f"RunPod answered {status} to {what}: {detail}"
    if status == 401:
        return AuthError(f"{said}; RunPod rejected the API key (RUNPOD_API_KEY)")
    if status == 402:
        return BalanceError(f"{said}; {BALANCE_ADVICE}")
    if status == 422:
        listed = "; ".join(errors) or "(no errors listed)"
        return ContractError(
            f"{said} [{listed}]: podmgr sent a body outside RunPod's API document; this is "
            "a podmgr bug, please report it with this message"
        )
    if status == 429:  # refused before it did anything
        return TransientApiError(said, may_have_applied=False, retry_after=retry_after)
    if create and status in (400, 403):
        return PlacementError(detail, status=status)
    if status == 400 and is_capacity(detail):  # a start whose host has no free GPU
        return CapacityError(detail)
    if status == 403:
        return AuthError(
            f"{said}; the API key (RUNPOD_API_KEY) may not do this "
            "(a read-only key?): give it read/write permission"
        )
    if status == 409:
        return ConflictError(said)
    if status >= 500:
        return TransientApiError(said, retry_after=retry_after)
    if status == 404 and pod_resource:
        return PodGoneError(said)
    error = ApiError(said)
    error.status = status  # a 404 on a create (no such template or volume) refused it outright
    return error


def classify_graphql_message(message: str, *, what: str) -> PodmgrError:
    """The error for a GraphQL `errors[0].message` that arrived with HTTP 200."""
    if message == GRAPHQL_UNAUTHORIZED:
        return AuthError(
            f"RunPod refused {what} ({message}): the API key (RUNPOD_API_KEY) lacks permission"
        )
    if _BALANCE_WORDING in message.lower():
        return BalanceError(f"RunPod refused {what}: {message}; {BALANCE_ADVICE}")
    if is_capacity(message):
        return CapacityError(message)
    if message.startswith(GRAPHQL_GENERIC_ERROR[:20]):
        return TransientApiError(f"RunPod failed {what}: {message}")
    return ApiError(f"RunPod refused {what}: {message}")
