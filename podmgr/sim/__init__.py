"""A local RunPod: the GraphQL API the real `runpod` SDK talks to, REST v1, pod URLs, vLLM.

    catalog.py      GPU types and prices
    schema.py       RunPod's GraphQL schema (the part used), as SDL
    pods.py         pod lifecycle on a clock, and the billing ledger
    faults.py       fault specs, parsing, and the seeded fault book
    world.py        settings and the shared world (pods + faults)
    operations.py   world operations both APIs call (create, list, start, ...), API faults
    resolvers.py    GraphQL queries and mutations acted out on the world
    api.py          POST /graphql: auth, API faults, execution
    rest.py         /v1/...: RunPod's REST API v1 (pods, billing)
    billing.py      GET /v1/billing/pods: the ledger bucketed and grouped
    textgen.py      deterministic generated text, ids and embeddings
    reply.py        what a pod answers before the edge sends it
    completions.py  chat/text completions as JSON or SSE
    vllm.py         the simulated vLLM server of one pod
    edge.py         /pods/{pod_id}-{port}/...: RunPod's proxy (502, 524, upstream faults)
    control.py      /_sim/*: ledger, faults, pod phase, crash, crash-container, kill-vllm
    server.py       the aiohttp app and the process loop
    testkit.py      SimProcess: the simulator as a subprocess, for tests and the demo

Importing this package imports nothing heavy; `podmgr.sim.testkit` uses only the stdlib.
"""

__all__: list[str] = []
