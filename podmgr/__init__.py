"""podmgr: a RunPod GPU pod lifecycle manager with a caching OpenAI-compatible proxy.

The watchdog (`podmgr.watchdog`) keeps one vLLM pod alive within hard limits, the proxy
(`podmgr.proxy`) serves it at http://127.0.0.1:8000/v1 with a disk cache, and the simulator
(`podmgr.sim`) stands in for RunPod so that everything runs on one machine.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
