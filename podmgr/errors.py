"""The one exception tree of podmgr; every class carries the exit code the CLI returns.

    PodmgrError (1)
    ├── ConfigError (2)             invalid config or CLI input; nothing was done
    ├── StateError (9)              the state file cannot be read or written
    ├── LockHeldError (0)           another watchdog holds the lock; not a failure
    ├── ApiError (1)                RunPod answered something we could not use
    │   ├── TransientApiError (6)   network error, timeout, 5xx, 429, "Something went wrong":
    │   │   │                       retried with backoff, raised when retries run out
    │   │   └── UnconfirmedCreateError (6)  a create failed in a way that may have made the
    │   │                           pod, which did not show up: never re-sent in the pass
    │   ├── AuthError (3)           bad or missing RUNPOD_API_KEY: never retried
    │   ├── CapacityError (4)       no instances of this GPU type: try the next one
    │   │   └── PlacementError (4)  a create answered 400 (not placed) or 403 (no access
    │   │                           to that pool): try the next candidate
    │   ├── ContractError (1)       RunPod answered 422: podmgr's body broke the API
    │   │                           document (a podmgr bug): never retried
    │   ├── ConflictError (1)       409: the action is not valid for the pod's status
    │   ├── BalanceError (11)       the account's balance is at $0: RunPod stopped its pods
    │   │                           and starts none; the session ends, add funds
    │   └── PodGoneError (5)        the pod no longer exists
    ├── StartupError (7)            a pod never became ready and was terminated; or its
    │                               host could not run the image, twice
    ├── PodFailedError (12)         the pod's log showed a failure of the configuration
    │                               (memory, a gated or unknown model, vLLM's arguments,
    │                               an architecture): terminated at once, session ended
    ├── CrashLoopError (8)          a pod kept dying past max_restarts and was terminated
    └── ProxyError (10)             the local proxy could not be started or stopped

Branches follow what a caller can do: retry (TransientApiError), fall back (CapacityError),
forget the pod (PodGoneError), or stop and tell the person (everything else).
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "BalanceError",
    "CapacityError",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "CrashLoopError",
    "LockHeldError",
    "PlacementError",
    "PodFailedError",
    "PodGoneError",
    "PodmgrError",
    "ProxyError",
    "StartupError",
    "StateError",
    "TransientApiError",
    "UnconfirmedCreateError",
]

MAX_MESSAGE_CHARS = 500


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Shorten foreign error text before it reaches a log or a person (kopf does the same)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PodmgrError(Exception):
    """Base of every error podmgr raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(truncate(message))
        self.message = truncate(message)


class ConfigError(PodmgrError):
    """Invalid configuration or command-line input; `field` names the offending path."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class StateError(PodmgrError):
    """The state file cannot be read or written."""

    exit_code = 9


class LockHeldError(PodmgrError):
    """Another watchdog pass holds the lock: this one has nothing to do."""

    exit_code = 0


class ApiError(PodmgrError):
    """RunPod answered with something we could not use."""

    # The HTTP status of RunPod's answer when no subclass says more (problems.py sets it).
    status: int | None = None


class TransientApiError(ApiError):
    """A failure worth retrying: network, timeout, 5xx, 429, RunPod's generic error.

    `may_have_applied` is False only when the request surely did nothing (no connection,
    429): a mutation answered with any other failure may have taken effect on RunPod
    (runpodctl#45, transformerlab-app#2305; ../shared/RUNPOD_FACTS.md).
    """

    exit_code = 6

    def __init__(
        self, message: str, *, may_have_applied: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.may_have_applied = may_have_applied
        # Seconds RunPod asked us to wait (`Retry-After` on a 429 or 503), or None.
        self.retry_after = retry_after


class UnconfirmedCreateError(TransientApiError):
    """A create answered with an error that may have made the pod, and the pod did not
    show up in the listing in time. Sending the create again could make a second pod, so
    the pass ends here; the next pass adopts the pod by its name (state.pending_create) or,
    once it has waited long enough, creates another."""


class AuthError(ApiError):
    """The RunPod API key is missing or rejected; retrying cannot help."""

    exit_code = 3


class CapacityError(ApiError):
    """RunPod has no instance of the requested GPU type right now."""

    exit_code = 4


class PlacementError(CapacityError):
    """A create was refused for this candidate: 400 ("the combination could not be placed":
    capacity carries no code of its own) or 403 (no access to that pool). RunPod OpenAPI
    v2, createPod: try the next candidate. `status` is the answer's."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ContractError(ApiError):
    """RunPod answered 422: the body podmgr sent breaks the API document. Retrying cannot
    help; it is a podmgr bug (RunPod OpenAPI v2, createPod: "never retry")."""


class ConflictError(ApiError):
    """RunPod answered 409: the action is not valid for the pod's current status
    (RunPod OpenAPI v2, podAction). The caller reads the pod to see where it is."""


class BalanceError(ApiError):
    """The account's balance is at $0: RunPod stops every pod then ("When your balance
    reaches $0, Runpod automatically stops all of your running Pods", RunPod docs
    accounts-billing/billing.mdx) and deploys none ("your account must have at least one
    hour's worth of credits", same page). No retry or resume can help: add funds."""

    exit_code = 11


class PodGoneError(ApiError):
    """The pod does not exist (any more)."""

    exit_code = 5


class StartupError(PodmgrError):
    """A pod never became ready within max_startup_attempts; it was terminated."""

    exit_code = 7


class PodFailedError(PodmgrError):
    """The pod's own log showed a failure no other pod of this config would escape (out of
    GPU memory, a gated or misspelt model, a bad vLLM argument, an unsupported architecture:
    podmgr/watchdog/podlog.py): the pod was terminated and the session ended. Change the
    configuration, then `podmgr up`."""

    exit_code = 12


class CrashLoopError(PodmgrError):
    """A pod kept dying past max_restarts; it was terminated."""

    exit_code = 8


class ProxyError(PodmgrError):
    """The local proxy could not be started, checked or stopped."""

    exit_code = 10
