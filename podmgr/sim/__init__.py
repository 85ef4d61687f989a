"""A local RunPod: REST API v2 (v1 answers 410 Gone), the GraphQL API the real `runpod` SDK
talks to (spot pods), pod logs, pod URLs, vLLM.

    catalog.py      GPU types, prices and `--gpu-stock` availability
    schema.py       RunPod's GraphQL schema (the part used), as SDL
    podspec.py      what a create asked for: PodSpec, PortSpec
    pods.py         pod lifecycle on a clock, and the billing ledger
    hosts.py        hosts' CUDA versions: placement, and whether an image starts
    faults.py       fault specs, parsing, and the seeded fault book
    fatal.py        vLLM failing to start: each failure's moment, lines and exit (one table)
    ratelimit.py    REST v2's per-account fixed windows, RateLimit / RateLimit-Policy headers
    world.py        settings and the shared world (pods, faults, logs, rate budget)
    operations.py   world operations both APIs call (create, list, start, ...), API faults
    resolvers.py    GraphQL queries and mutations acted out on the world
    api.py          POST /graphql: auth, API faults, execution
    v2/             /v2/...: RunPod's REST API v2 (its own module map in v2/__init__.py)
    podlogs.py      each pod's log lines (system, container) with strictly increasing ts
    narrator.py     host lifecycle lines and vLLM's start-up output on the pod's clock;
                    a failing vLLM's exit and RunPod's restart
    podkeys.py      pod-scoped API keys and what they may do
    volumes.py      network volumes and where a pod with one is placed
    runpod_stops.py stops RunPod makes on its own: balance at $0, spot preemption
    textgen.py      deterministic generated text, ids and embeddings
    reply.py        what a pod answers before the edge sends it
    completions.py  chat/text completions as JSON or SSE
    vllm.py         the simulated vLLM server of one pod
    edge.py         /pods/{pod_id}-{port}/...: RunPod's proxy (502, 524, upstream faults)
    podproc.py      pods run for real (--run-guards): the guard as a process per pod
    standin_vllm.py the `vllm` those pods run: vLLM's app shell with its --middleware
    control.py      /_sim/*: ledger, faults, pod phase, crash, crash-container, kill-vllm
    server.py       the aiohttp app and the process loop
    process.py      SimProcess: the simulator as a subprocess, for the demo, bench and tests

Importing this package imports nothing heavy; `podmgr.sim.process` uses only the stdlib.
"""

__all__: list[str] = []
