"""The simulated vLLM's `/metrics`: request counters in vLLM's Prometheus names.

vLLM exports `vllm:request_success_total` (a counter of finished requests, labelled by
`finished_reason` and `model_name`), and the gauges `vllm:num_requests_running` and
`vllm:num_requests_waiting` (vllm/engine/metrics.py; RUNPOD_FACTS.md "vLLM's
OpenAI-compatible server"). The simulator counts from what reached the pod's URL
(podmgr/sim/traffic.py): a model call answered 200 is one finished request, one still
pending is running. The stand-in `vllm` executable (podmgr/sim/standin_vllm.py) serves
this text on the pod's localhost, where the pod's guard reads it.
"""

from __future__ import annotations

from podmgr.sim.pods import SimPod
from podmgr.sim.traffic import MODEL_PATHS, PodTraffic

__all__ = ["render_metrics"]


def render_metrics(pod: SimPod, traffic: PodTraffic) -> str:
    running = sum(
        1
        for record in traffic.recent
        if record.outcome == "pending" and record.admitted and record.path in MODEL_PATHS
    )
    model = pod.model
    return (
        "# HELP vllm:request_success_total Count of successfully processed requests.\n"
        "# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{finished_reason="stop",model_name="{model}"}} '
        f"{float(traffic.model_calls)}\n"
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{model_name="{model}"}} {float(running)}\n'
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{model_name="{model}"}} 0.0\n'
    )
