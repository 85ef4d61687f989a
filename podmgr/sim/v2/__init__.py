"""RunPod's REST API v2 under `/v2`, on the same world as the GraphQL API.

Everything here follows RunPod's published OpenAPI document (docs repository,
`api-reference-v2/openapi.json`, title "Runpod REST API" 2.0.0), cited by schema and path
name in each module; where RunPod's exact answer is undocumented, the module says so.

    routes.py     the route table: /v2/... and the retired /v1/... (410)
    intake.py     one request's way in: auth, rate limit, call faults, problem answers
    problems.py   RFC 9457 problem+json bodies (ErrorResponse), SimApiError -> status
    bodies.py     CreatePodRequest and PodActionRequest as strict pydantic models; 422 texts
    create.py     a CreatePodRequest as a world create order (start-command JSON, mounts)
    podview.py    the `Pod` body: status, actions, runtime, cost
    pods.py       /v2/pods, /v2/pods/{id}, /v2/pods/{id}/action
    logs.py       /v2/pods/{id}/logs: Server-Sent Events that follow the pod's log
    catalog.py    /v2/catalog/gpus[/{id}] with AVAILABILITY
    billing.py    /v2/billing/pods
    volumes.py    /v2/network-volumes[/{id}]

This package's `__init__` imports nothing. The account's rate budget it spends is the
world's: podmgr/sim/ratelimit.py.
"""

__all__: list[str] = []
