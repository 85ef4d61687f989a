"""Simulated network volumes, and where a pod with one is placed.

Shapes follow RunPod REST API v2 (openapi.json, NetworkVolume: `id name size dataCenter
type`, type STANDARD|HIGH_PERFORMANCE; routes in podmgr/sim/v2/volumes.py). A network
volume "persists independently of pods"; attached on create (`networkVolumeId`) it
"replaces the Pod's default volume disk, typically mounted at /workspace" and pins the pod
to the volume's data center; network volumes exist only in Secure Cloud (RunPod docs,
storage/network-volumes.mdx). A v2 create names it in `mounts.network[0].volumeId`.
Weights that vLLM downloaded onto it (HF_HOME under the mount path) are there for every
later pod: downloaded once per volume (`has_weights`). A create naming an unknown volume
fails with "Network volume not found" (RUNPOD_FACTS.md, "not found" errors that are not
"pod gone").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pods.py imports this module
    from podmgr.sim.podspec import PodSpec

__all__ = ["NETWORK_VOLUME_NOT_FOUND", "SimVolume", "VolumeError", "place_with_volume"]

NETWORK_VOLUME_NOT_FOUND = "Network volume not found"


class VolumeError(ValueError):
    """A create's network volume cannot be used; the message is RunPod-like."""


@dataclass
class SimVolume:
    """One network volume; `has_weights`: a pod's vLLM finished downloading onto it."""

    id: str
    name: str
    size: int
    data_center_id: str
    has_weights: bool = False
    type: str = "STANDARD"

    def to_rest(self) -> dict[str, object]:
        """The REST v2 NetworkVolume."""
        return {"id": self.id, "name": self.name, "size": self.size,
                "dataCenter": self.data_center_id, "type": self.type}  # fmt: skip


def place_with_volume(
    volumes: Mapping[str, SimVolume], spec: PodSpec
) -> tuple[PodSpec, SimVolume | None]:
    """A create with `networkVolumeId`: Secure Cloud, in the volume's data center.

    VolumeError for an unknown volume (REST v2 answers it 404, createPod), Community Cloud
    or another data center (400).
    """
    if not spec.network_volume_id:
        return spec, None
    volume = volumes.get(spec.network_volume_id)
    if volume is None:
        raise VolumeError(NETWORK_VOLUME_NOT_FOUND)
    if spec.cloud_type != "SECURE":
        raise VolumeError("Network volumes are only available in Secure Cloud")
    if spec.data_center_ids and volume.data_center_id not in spec.data_center_ids:
        raise VolumeError(
            f"Network volume {volume.id} is in {volume.data_center_id}, not in dataCenterIds"
        )
    return dataclasses.replace(spec, data_center_ids=(volume.data_center_id,)), volume
