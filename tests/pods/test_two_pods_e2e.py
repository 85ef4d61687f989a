"""Two pods end to end (issue 23, Done when 1 and 2), with real processes only.

The simulator; `podmgr up --yes` (the real CLI) with a two-pod config, which starts the
real proxy; the openai SDK as the client; cron played by running `manage_pod.py` (one
watchdog pass) from the test. The big model's pod runs on an RTX A6000, the small one's on
an RTX 4090: the simulator's ledger tells them apart by GPU type, and a sampler thread
reads the ledger all along to check that no two live pods ever serve one model.

The story: `up` brings both pods to serving; the SDK lists both models; a chat request per
model reaches its own pod (X-Upstream and the simulator's per-pod request log). Then only
the big model is asked while cron passes run, until the small pod (idle_timeout_seconds
FIM_IDLE) is terminated for idle and the big one still serves. A request for the small
model wakes it (the proxy runs `podmgr up --yes --config X fim`): that request gets the
cold start's 503 with Retry-After naming the pod, the big model's next request is answered
by its pod meanwhile, and then the small model is served by a new pod while the big pod
is the one it was. `podmgr shutdown` ends both; nothing is left alive. The watchdog's idle
rule reads the proxy's `/health` `last_request_by_model`: the state books it under the
config's models (checked), and the big pod (its own idle time CHAT_IDLE, longer than the
test) is asked at every step.

The guards in the pods check every GUARD_INTERVAL seconds (longer than the test needs), so
the idle end is the watchdog's, decided when the test runs a pass, not a race with the
small pod's own guard (the guard's idle rule has tests of its own: tests/guard).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from podmgr.runpod.client import RunPodClient
from podmgr.sim.process import SimProcess, free_port, wait_http, wait_until
from podmgr.state import State, StateStore
from podmgr.watchdog.proxy_probe import is_our_proxy

BIG, SMALL = "sim/coder-32b", "sim/coder-1.5b"
GPU = {"NVIDIA RTX A6000": "chat", "NVIDIA GeForce RTX 4090": "fim"}
FIM_IDLE = 4
CHAT_IDLE = 90
GUARD_INTERVAL = 600
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def e2e_sim() -> Iterator[SimProcess]:
    """A simulator whose pods serve ~0.6 s after their create (pull 0.3 s, load 0.3 s)."""
    with SimProcess(pull_seconds=0.3, load_seconds=0.3, token_delay=0.0) as process:
        yield process


class Sampler(threading.Thread):
    """Reads the simulator's ledger every 0.1 s and counts live pods per configured pod
    (by GPU type); `worst` is the most live pods one model ever had at one sample."""

    def __init__(self, sim: SimProcess, prefix: str) -> None:
        super().__init__(daemon=True)
        self.sim, self.prefix = sim, prefix
        self.worst: Counter[str] = Counter()
        self.samples = 0
        self.stopping = threading.Event()

    def alive(self) -> Counter[str]:
        listed = [p for p in self.sim.ledger() if p["name"].startswith(self.prefix)]
        return Counter(GPU[p["gpu_type_id"]] for p in listed if p["status"] != "TERMINATED")

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                counts = self.alive()
            except OSError:
                continue  # a busy simulator: the next sample counts
            self.samples += 1
            for name, count in counts.items():
                self.worst[name] = max(self.worst[name], count)


class Product:
    """The config, the CLI and the processes of one run, in a temp dir."""

    def __init__(self, sim: SimProcess, directory: Path) -> None:
        self.sim, self.dir = sim, directory
        self.prefix = f"e{uuid.uuid4().hex[:8]}-"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "pod_config.json"
        (directory / "home").mkdir()
        self.env = sim.env(directory / "home")
        shared = {"endpoint_url_template": sim.pod_url_template, "pod_name_prefix": self.prefix}
        values: dict[str, Any] = {
            "pods": [
                {
                    "name": "chat",
                    "model": BIG,
                    "gpu_type_id": ["NVIDIA RTX A6000"],
                    "idle_timeout_seconds": CHAT_IDLE,
                    **shared,
                },
                {
                    "name": "fim",
                    "model": SMALL,
                    "gpu_type_id": ["NVIDIA GeForce RTX 4090"],
                    "idle_timeout_seconds": FIM_IDLE,
                    **shared,
                },
            ],
            "runtime_seconds": 900,
            "idle_timeout_seconds": 3600,
            "wake_on_request": True,
            "initial_wait_seconds": 0,
            "poll_interval_seconds": 0.2,
            "max_startup_attempts": 300,
            "watchdog_interval_seconds": 1,
            "restart_backoff_seconds": 0,
            "api_retry_initial_seconds": 0.01,
            "api_retry_max_seconds": 2,
            "guard_interval_seconds": GUARD_INTERVAL,
            "proxy_port": self.port,
            "proxy_start_timeout_seconds": 60,  # a loaded machine took >10 s to start a proxy
            "state_file": "state/state.json",
            "cache_dir": "cache",
            "cache_mode": "off",
        }
        self.config_path.write_text(json.dumps(values))
        self.client = openai.OpenAI(
            base_url=self.url + "/v1", api_key="x", max_retries=0, timeout=60
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m podmgr ARGS --config X`, as a person types it."""
        command = [sys.executable, "-m", "podmgr", *args, "--config", str(self.config_path)]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=300, cwd=self.dir
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def cron_pass(self) -> None:
        """One watchdog pass as cron runs it: `manage_pod.py --config X`."""
        command = [sys.executable, str(ROOT / "manage_pod.py"), "--config", str(self.config_path)]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=300, cwd=self.dir
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def state(self) -> State:
        state = StateStore(self.dir / "state" / "state.json").peek()
        assert state is not None
        return state

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/health", timeout=30) as answer:
            health: dict[str, Any] = json.loads(answer.read())
        return health

    def ask(self, model: str, tag: str) -> openai.types.chat.ChatCompletion:
        """A chat request for `model`; the answer, with X-Upstream checked by the caller."""
        raw = self.client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": tag}], max_tokens=3
        )
        self.last_upstream = raw.headers.get("x-upstream")
        return raw.parse()

    def reached(self, pod_id: str, tag: str) -> bool:
        recent = self.sim.pod_traffic(pod_id)["recent"]
        return any(tag in r["body"] for r in recent if r["path"] == "/v1/chat/completions")

    def close(self) -> None:
        """Whatever a failed test left: live pods terminated, the proxy stopped."""
        rest = RunPodClient(api_key=self.sim.api_key, retry_max_seconds=5)
        for pod in self.sim.ledger():
            if pod["name"].startswith(self.prefix) and pod["status"] != "TERMINATED":
                rest.terminate_pod(pod["id"])
        state = StateStore(self.dir / "state" / "state.json").peek()
        pid = state.proxy_pid if state is not None else None
        if pid and is_our_proxy(pid, self.config_path.resolve()):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def product(e2e_sim: SimProcess, tmp_path: Path) -> Iterator[Product]:
    made = Product(e2e_sim, tmp_path)
    yield made
    made.close()


def _served(product: Product, model: str, pod: str, pod_id: str) -> bool:
    tag = f"to {pod} {uuid.uuid4().hex}"
    answer = product.ask(model, tag)
    assert answer.model == model and product.last_upstream == pod
    return product.reached(pod_id, tag)


@contextmanager
def watched(product: Product) -> Iterator[Sampler]:
    """The run's sampler of the simulator's listing; after it, never two live pods for one
    model."""
    sampler = Sampler(product.sim, product.prefix)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stopping.set()
        sampler.join(timeout=30)
    assert sampler.samples > 0
    assert max(sampler.worst.values()) == 1, f"two live pods for one model: {sampler.worst}"


def test_two_pods_serve_their_models_the_small_one_idles_out_and_wakes(
    product: Product,
) -> None:
    with watched(product) as sampler:
        chat_id, fim_id = _up_both(product, sampler)
        _idle_out_small(product, sampler, chat_id)
        _wake_small(product, chat_id, fim_id)
        _shut_down(product, sampler, Counter({"chat": 1, "fim": 2}))


def test_a_failed_wake_of_the_small_pod_rests_it_alone_while_the_big_one_serves(
    product: Product,
) -> None:
    """RunPod has no RTX 4090 when the small pod is woken: its `podmgr up fim` fails, and
    the next request for it is told so (the failed-wake rest of that pod, in the running
    session) instead of starting `podmgr up fim` again; the big model is answered all along."""
    with watched(product) as sampler:
        chat_id, _ = _up_both(product, sampler)
        _idle_out_small(product, sampler, chat_id)
        product.sim.set_fault("capacity", gpu_type_ids=["NVIDIA GeForce RTX 4090"])
        try:
            _wake_fails(product, chat_id)
        finally:
            product.sim.clear_faults()
        _shut_down(product, sampler, Counter({"chat": 1, "fim": 1}))


def _wake_fails(product: Product, chat_id: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        product.ask(SMALL, f"wake {uuid.uuid4().hex}")
    assert "the GPU pod fim is starting" in caught.value.message, caught.value.message

    def failed() -> int | None:
        assert _served(product, BIG, "chat", chat_id)
        wake = product.health()["wake"]
        return None if wake["running"] else wake["by_pod"]["fim"]["last_exit"]

    code = wait_until(failed, "the small pod's wake to end", timeout=180)
    assert code != 0, (product.dir / "state" / "wake.log").read_text()
    with pytest.raises(openai.APIStatusError) as again:
        product.ask(SMALL, f"again {uuid.uuid4().hex}")
    assert again.value.status_code == 503
    assert f"the last wake of the GPU pod fim failed (podmgr up exit {code})" in (
        again.value.message
    ), again.value.message
    wake = product.health()["wake"]
    assert wake["wakes"] == 1 and wake["by_pod"]["chat"]["blocked"] is None, wake
    assert _served(product, BIG, "chat", chat_id)


def _up_both(product: Product, sampler: Sampler) -> tuple[str, str]:
    """`podmgr up` brings both to serving and starts the proxy; each model reaches its own
    pod. The pods' ids, chat's and fim's."""
    up = product.cli("up", "--yes")
    assert f"models {BIG} (pod chat), {SMALL} (pod fim)" in up.stdout, up.stdout
    assert "has not picked up" not in up.stdout, up.stdout
    wait_http(product.url + "/health", what="the proxy `up` started")
    first = product.state()
    chat_id, fim_id = first.pods["chat"].id, first.pods["fim"].id
    assert sampler.alive() == Counter({"chat": 1, "fim": 1})
    assert sorted(m.id for m in product.client.models.list()) == sorted([BIG, SMALL])
    for model, pod, pod_id in ((BIG, "chat", chat_id), (SMALL, "fim", fim_id)):
        other = fim_id if pod == "chat" else chat_id
        tag = f"first {pod} {uuid.uuid4().hex}"
        assert product.ask(model, tag).model == model
        assert product.last_upstream == pod
        assert product.reached(pod_id, tag) and not product.reached(other, tag)
    return chat_id, fim_id


def _idle_out_small(product: Product, sampler: Sampler, chat_id: str) -> None:
    """Only the big model is asked; cron passes end the small pod for idle."""

    def small_ended() -> bool:
        assert _served(product, BIG, "chat", chat_id)
        product.cron_pass()
        return sampler.alive()["fim"] == 0

    wait_until(small_ended, f"the small pod to idle out ({FIM_IDLE} s)", timeout=180)
    idle = product.state()
    assert idle.session is not None and idle.session.active
    assert idle.session.ended_pods == {"fim": "idle"}
    assert set(idle.pods) == {"chat"} and idle.pods["chat"].id == chat_id
    # the watchdog booked the proxy's `/health` requests by model under the config's models
    assert set(idle.last_request_by_model) == {BIG, SMALL}
    assert idle.last_request_by_model[BIG] > idle.last_request_by_model[SMALL]
    assert _served(product, BIG, "chat", chat_id)
    wait_until(lambda: product.health()["pods"]["fim"] is None, "the proxy to see fim down")


def _wake_small(product: Product, chat_id: str, fim_id: str) -> None:
    """A request for the small model wakes its pod: the cold start's 503 names it, the big
    model is answered meanwhile; then a new small pod serves beside the same big one."""
    with pytest.raises(openai.APIStatusError) as caught:
        product.ask(SMALL, f"wake {uuid.uuid4().hex}")
    refused = caught.value.response
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
    assert "the GPU pod fim is starting" in caught.value.message, caught.value.message
    assert _served(product, BIG, "chat", chat_id)
    wake = product.health()["wake"]
    assert wake["wakes"] == 1 and wake["pod"] == "fim", wake

    def small_serves() -> bool:
        assert _served(product, BIG, "chat", chat_id)  # the big model waits for nothing
        try:
            answer = product.ask(SMALL, f"again {uuid.uuid4().hex}")
        except openai.APIStatusError as error:
            assert error.status_code == 503, error.message
            assert "the GPU pod fim" in error.message, error.message
            return False
        return answer.model == SMALL and product.last_upstream == "fim"

    wait_until(small_serves, "the woken small pod to serve", timeout=180)
    woken = product.state()
    assert woken.session is not None and woken.session.ended_pods == {}
    assert woken.pods["chat"].id == chat_id and woken.pods["fim"].id != fim_id
    assert _served(product, SMALL, "fim", woken.pods["fim"].id)
    assert _served(product, BIG, "chat", chat_id)
    wait_until(lambda: not product.health()["wake"]["running"], "the wake's `podmgr up` to exit")
    assert product.health()["wake"]["last_exit"] == 0, product.dir / "state" / "wake.log"


def _shut_down(product: Product, sampler: Sampler, made: Counter[str]) -> None:
    """`podmgr shutdown` ends both; no pod of the run is left alive; `made`: the pods the
    run made, by configured pod."""
    product.cli("shutdown")
    assert sampler.alive() == Counter()
    ledger = [p for p in product.sim.ledger() if p["name"].startswith(product.prefix)]
    assert Counter(GPU[p["gpu_type_id"]] for p in ledger) == made
    assert all(p["status"] == "TERMINATED" for p in ledger)
    ended = product.state().session
    assert ended is not None and ended.end_reason == "shutdown"
