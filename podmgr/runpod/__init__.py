"""Everything RunPod, in one package: REST API v2 for pods, catalog, logs, billing and
volumes; GraphQL only for a spot pod's create. The rest of podmgr imports from here.

    wire.py       the v2 document's schemas podmgr sends and reads (strict mode for tests)
    rest.py       RestApi: one httpx request per method, rate-limit pacing, SSE logs
    problems.py   RFC 9457 problems and GraphQL errors -> podmgr's exception tree
    ratelimit.py  the `RateLimit` header, and the pause before a window runs dry
    values.py     PodInfo, PodSpec, GpuType: plain values the watchdog decides on
    create.py     what every create sends: the start command, the spot mark
    client.py     RunPodClient: retries, creates, lifecycle actions, catalog, logs
    placement.py  which (GPU type, cloud) candidates a create tries, from the catalog
    billing.py    RunPod's billed amount per pod (`GET /billing/pods`)
    spot.py       spot pods through GraphQL (the `runpod` SDK's transport)
"""
