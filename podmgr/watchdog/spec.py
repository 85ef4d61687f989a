"""What a create asks RunPod for: a PodSpec from the config, for one GPU type and cloud.

The config's pod fields, podmgr's marker env and the pod's own vLLM key, the weights' cache
on the volume when there is one, the CUDA floor (or exact set), and, when the config allows
and RunPod was not seen passing the start command literally, the pod's guard with the
session's limits (podmgr/guard/launch.py).
"""

from __future__ import annotations

import time

from podmgr.config import Config
from podmgr.guard.launch import guard_entrypoint, guard_env, guard_problem
from podmgr.runpod.values import PodSpec
from podmgr.state import Session
from podmgr.watchdog.identity import VLLM_KEY_ENV, marker_env

__all__ = ["pod_spec"]


def pod_spec(
    config: Config,
    cid: str,
    name: str,
    gpu: str,
    vllm_key: str,
    cloud: str | None = None,
    *,
    spot: bool = False,
    session: Session | None = None,
    now: float | None = None,
    guard: bool = True,
) -> PodSpec:
    """The create request for one GPU type (and cloud, default the config's): config,
    marker env, the pod's vLLM key and, when the config allows and `guard` (RunPod was
    not seen passing the start command literally), the pod's guard with the session's
    limits (podmgr/guard/launch.py); `spot`: an interruptible pod."""
    # The weights on the volume survive a stop (network volume: every pod that mounts it).
    volume_env = {"HF_HOME": config.pod.hf_home} if config.pod.weights_on_volume else {}
    env = {**volume_env, **config.pod.resolved_env(), **marker_env(cid), VLLM_KEY_ENV: vllm_key}
    command, entrypoint = config.pod.container_command(), tuple[str, ...]()
    if guard and guard_problem(config) is None:
        env.update(guard_env(config, session, time.time() if now is None else now))
        command, entrypoint = f"vllm serve {command}", tuple(guard_entrypoint())
    return PodSpec(
        name=name,
        image_name=config.pod.image_name,
        gpu_type_id=gpu,
        cloud_type=cloud or config.pod.cloud_type,
        gpu_count=config.pod.gpu_count,
        container_disk_in_gb=config.pod.container_disk_in_gb,
        volume_in_gb=config.pod.volume_in_gb,
        volume_mount_path=config.pod.volume_mount_path,
        docker_args=command,
        ports=f"{config.pod.vllm_port}/http",
        env=env,
        template_id=config.pod.template_id,
        allowed_cuda_versions=tuple(config.pod.allowed_cuda_versions or ()),
        min_cuda_version=None if config.pod.allowed_cuda_versions else config.pod.cuda_floor,
        interruptible=spot,
        network_volume_id=config.pod.network_volume_id,
        data_center_ids=tuple(config.pod.data_center_ids or ()),
        docker_entrypoint=entrypoint,
    )
