"""Wake on request (issue 13): the proxy starts a session itself, fallbacks answer meanwhile.

The scenario of the issue's "done when", on the simulator, scaled in time: a pod takes
about 4 s to serve here (pull 2 s + load 2 s) instead of ~30 s, and `idle_timeout_seconds`
is 3 s. Upstreams `[pod, local]`: `local` is a second simulated pod, not ours (its name
lacks the watchdog's prefix), named by URL. Cron is played by running
`podmgr watchdog` passes from the test. Unit tests cover what blocks a wake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from simkit import SimUpstream, start_pod

from podmgr.config import build_config
from podmgr.config.upstreams import in_wake_hours
from podmgr.proxy.wake import Waker
from podmgr.sim.process import SimProcess, wait_until
from podmgr.state import PodRecord, Session, State

from .proxykit import ProxyProcess, make_waker, wake_window_two_hours_on

LOCAL_KEY = "test-local-key-not-real"
MODEL = "m"
IDLE_SECONDS = 3
# `podmgr up`'s initial wait in the wake test where cron sees the pod serve and end first:
# long enough for a pod (~4 s), its answer and an idle end (3 s) on a busy machine.
UP_WAIT = 30


# How long a woken pod takes to serve: ~4 s in the suite; the issue's ~30 s with
# PODMGR_WAKE_POD_SECONDS=30 (half image pull, half model load).
POD_SECONDS = float(os.environ.get("PODMGR_WAKE_POD_SECONDS", "4"))


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[tuple[SimProcess, SimUpstream]]:
    """A simulator whose pods take POD_SECONDS to serve, and `local`: one of its pods."""
    with SimProcess(pull_seconds=POD_SECONDS / 2, load_seconds=POD_SECONDS / 2) as sim:
        yield sim, start_pod(sim, api_key=LOCAL_KEY, model=MODEL)


def _ours(sim: SimProcess, prefix: str) -> list[dict[str, Any]]:
    return [pod for pod in sim.ledger() if pod["name"].startswith(prefix)]


def _alive(sim: SimProcess, prefix: str) -> list[dict[str, Any]]:
    return [pod for pod in _ours(sim, prefix) if pod["terminated_at"] is None]


def _ask(client: openai.OpenAI) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"hi {uuid.uuid4().hex}"}],
        max_tokens=6,
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-upstream"]


def _pass(proxy: ProxyProcess, env: dict[str, str]) -> None:
    """One cron pass."""
    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "watchdog", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pod_wakes_on_request_serves_goes_idle_and_wakes_again(
    make_proxy: Any, slow_sim: tuple[SimProcess, SimUpstream], tmp_path: Path
) -> None:
    sim, local = slow_sim
    prefix = f"w{uuid.uuid4().hex[:8]}-"
    proxy: ProxyProcess = make_proxy(
        start=False,
        model=MODEL,
        pod_name_prefix=prefix,
        endpoint_url_template=sim.pod_url_template,
        gpu_type_id="NVIDIA GeForce RTX 4090",
        initial_wait_seconds=0,
        poll_interval_seconds=0.2,
        max_startup_attempts=300,
        watchdog_interval_seconds=1,
        restart_backoff_seconds=0,
        api_retry_initial_seconds=0.01,
        api_retry_max_seconds=2,
        idle_timeout_seconds=IDLE_SECONDS,
        wake_on_request=True,
        cache_mode="off",
        upstreams=[
            {"name": "pod", "kind": "pod"},
            {"name": "local", "kind": "openai", "base_url": local.url, "api_key": "${LOCAL_KEY}"},
        ],
    )
    env = sim.env(tmp_path / "home") | {"LOCAL_KEY": LOCAL_KEY}
    proxy.start(env=env)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=30)
    direct = openai.OpenAI(base_url=local.url + "/v1", api_key=LOCAL_KEY, max_retries=0)

    for round_ in (1, 2):
        # No session: the first request is local's (the same text as asking local), and wakes.
        prompt = [{"role": "user", "content": f"same {uuid.uuid4().hex}"}]
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=prompt,
            max_tokens=6,
            temperature=0,  # type: ignore[arg-type]
        )
        assert raw.headers["x-upstream"] == "local"
        mine = raw.parse().choices[0].message.content
        theirs = direct.chat.completions.create(
            model=MODEL,
            messages=prompt,
            max_tokens=6,
            temperature=0,  # type: ignore[arg-type]
        )
        assert mine == theirs.choices[0].message.content
        wait_until(lambda n=round_: proxy.health()["wake"]["wakes"] == n, f"wake number {round_}")

        # While it starts: fallbacks answer, no second wake; then the pod takes over.
        def pod_answers() -> bool:
            assert len(_alive(sim, prefix)) <= 1, _ours(sim, prefix)
            return _ask(client)[1] == "pod"

        wait_until(
            pod_answers, "the woken pod to answer (X-Upstream: pod)", timeout=120 + 4 * POD_SECONDS
        )
        assert proxy.health()["wake"]["wakes"] == round_
        assert len(_alive(sim, prefix)) == 1

        # Idle: cron passes end the session and terminate the pod; the proxy keeps running.
        time.sleep(IDLE_SECONDS + 0.5)

        def terminated() -> bool:
            _pass(proxy, env)
            return not _alive(sim, prefix)

        wait_until(terminated, "an idle pass to terminate the pod", timeout=60)
        session = proxy.health()["session"]
        wait_until(
            lambda: proxy.health()["session"]["end_reason"] == "idle",
            f"the proxy to see the session ended for idle (was {session})",
        )
    assert len(_ours(sim, prefix)) == 2
    first, second = sorted(_ours(sim, prefix), key=lambda pod: pod["created_at"])
    assert first["terminated_at"] <= second["created_at"], "two pods at once"


def test_a_wake_whose_pod_served_before_up_looked_is_no_failed_wake(
    make_proxy: Any, slow_sim: tuple[SimProcess, SimUpstream], tmp_path: Path
) -> None:
    """The woken `podmgr up` sits in its initial wait (UP_WAIT) while cron passes bring
    the pod to serving, it answers, and a pass ends the session for idle. When `up` looks
    again the session has ended: it served, so `up` exits 0 and the next request wakes a
    new session at once (before the fix: exit 7, and 60 s of fallback-only answers)."""
    sim, local = slow_sim
    prefix = f"u{uuid.uuid4().hex[:8]}-"
    proxy: ProxyProcess = make_proxy(
        start=False, model=MODEL, pod_name_prefix=prefix,
        endpoint_url_template=sim.pod_url_template, gpu_type_id="NVIDIA GeForce RTX 4090",
        initial_wait_seconds=UP_WAIT, poll_interval_seconds=0.2, max_startup_attempts=300,
        watchdog_interval_seconds=1, restart_backoff_seconds=0,
        api_retry_initial_seconds=0.01, api_retry_max_seconds=2,
        idle_timeout_seconds=IDLE_SECONDS, wake_on_request=True, cache_mode="off",
        upstreams=[
            {"name": "pod", "kind": "pod"},
            {"name": "local", "kind": "openai", "base_url": local.url, "api_key": "${LOCAL_KEY}"},
        ],
    )  # fmt: skip
    env = sim.env(tmp_path / "home") | {"LOCAL_KEY": LOCAL_KEY}
    proxy.start(env=env)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=30)

    assert _ask(client)[1] == "local"
    wait_until(lambda: proxy.health()["wake"]["wakes"] == 1, "the first wake")
    wait_until(lambda: (proxy.health()["session"] or {}).get("active"), "its session", timeout=120)

    def pod_answers() -> bool:
        _pass(proxy, env)  # cron, not `podmgr up`, sees the pod serve
        return _ask(client)[1] == "pod"

    wait_until(pod_answers, "the pod to answer", timeout=120 + 4 * POD_SECONDS)
    time.sleep(IDLE_SECONDS + 0.5)

    def ended() -> bool:
        _pass(proxy, env)
        return not _alive(sim, prefix)

    wait_until(ended, "an idle pass to end the session", timeout=60)
    wait_until(
        lambda: proxy.health()["session"]["end_reason"] == "idle",
        "the proxy to see the session ended for idle",
    )
    wake = wait_until(
        lambda: (w := proxy.health()["wake"])["running"] is False and w,
        "the wake's `podmgr up` to exit",
        timeout=UP_WAIT + 120,
    )
    said = (proxy.state_path.parent / "wake.log").read_text()
    assert wake["last_exit"] == 0, said
    assert wake["blocked"] is None, wake
    assert "before the pod served" not in said, said
    # `up` either saw the session already ended (it served, then idled), or, looking at the
    # pod's URL every 2 s between its passes, saw it serve first: either way no failure.
    ended_after = "the pod served; its session has since ended (idle)" in said
    assert ended_after or "serving: base URL" in said, said
    assert _ask(client)[1] == "local"  # no pod now: the fallback answers, and it wakes
    assert proxy.health()["wake"]["wakes"] == 2
    wait_until(lambda: _try_pod(client), "the second wake's pod", timeout=120 + 4 * POD_SECONDS)


def test_without_fallbacks_503_names_the_phase_and_shutdown_leaves_the_proxy_to_wake(
    make_proxy: Any, slow_sim: tuple[SimProcess, SimUpstream], tmp_path: Path
) -> None:
    sim, _ = slow_sim
    prefix = f"v{uuid.uuid4().hex[:8]}-"
    proxy: ProxyProcess = make_proxy(
        start=False,
        model=MODEL,
        pod_name_prefix=prefix,
        endpoint_url_template=sim.pod_url_template,
        gpu_type_id="NVIDIA GeForce RTX 4090",
        initial_wait_seconds=0,
        poll_interval_seconds=0.2,
        max_startup_attempts=300,
        restart_backoff_seconds=0,
        api_retry_initial_seconds=0.01,
        api_retry_max_seconds=2,
        wake_on_request=True,
    )
    env = sim.env(tmp_path / "home")
    proxy.start(env=env)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as caught:
        _ask(client)
    answer = caught.value.response
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert "starting" in caught.value.message and "so far" in caught.value.message
    wait_until(lambda: _try_pod(client), "the woken pod to answer", timeout=120)

    done = subprocess.run(
        [sys.executable, "-m", "podmgr", "shutdown", "--config", str(proxy.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not _alive(sim, prefix)
    assert proxy.health()["status"] == "ok", "shutdown stopped the proxy despite wake_on_request"
    wait_until(lambda: proxy.health()["session"]["end_reason"] == "shutdown", "the session to end")
    wait_until(lambda: _try_pod(client), "a request to wake a new session", timeout=120)
    assert proxy.health()["wake"]["wakes"] == 2 and len(_ours(sim, prefix)) == 2
    assert len(_alive(sim, prefix)) == 1


def _try_pod(client: openai.OpenAI) -> bool:
    try:
        return _ask(client)[1] == "pod"
    except openai.APIStatusError as error:
        assert error.status_code == 503, error
        return False


# --- what blocks a wake (unit) ---------------------------------------------------------------
def _ended(reason: str) -> State:
    now = time.time()
    session = Session(started_at=now - 60, deadline=now + 60, ended_at=now, end_reason=reason)
    return State(session=session)


@pytest.mark.parametrize("reason", ["budget", "crash_loop", "no_container"])
def test_a_session_ended_by_a_limit_blocks_a_wake(tmp_path: Path, reason: str) -> None:
    waker = make_waker(tmp_path, _ended(reason))
    why = waker.on_request()
    assert why is not None and reason in why and waker.wakes == 0
    failure = waker.starting_failure(why)
    assert failure is not None and failure.status == 503 and failure.retry_after


@pytest.mark.parametrize("reason", ["idle", "deadline", "shutdown"])
def test_a_session_ended_otherwise_is_woken_once(tmp_path: Path, reason: str) -> None:
    waker = make_waker(tmp_path, _ended(reason), wake_hours=["00:00-24:00"])
    waker.command = [sys.executable, "-c", "import time; time.sleep(2)"]
    assert waker.on_request() is None and waker.wakes == 1
    assert waker.on_request() is None and waker.wakes == 1  # not re-triggered while it runs
    failure = waker.starting_failure(None)
    assert failure is not None and "starting" in failure.message and failure.retry_after


def _served_and_ended(reason: str, started_at: float) -> State:
    session = Session(
        started_at=started_at, deadline=started_at + 600, ended_at=time.time(), end_reason=reason
    )
    pod = PodRecord(
        id="p1", name="podmgr-p1", gpu_type_id="g", created_at=started_at,
        ready_at=started_at + 25, phase="ready", vllm_api_key="k",
    )  # fmt: skip
    session.book_pod(pod, 0.01)
    return State(session=session)


@pytest.mark.parametrize("reason", ["idle", "deadline", "shutdown"])
def test_a_wake_whose_session_served_and_ended_normally_does_not_rest(
    tmp_path: Path, reason: str
) -> None:
    """Even when its `podmgr up` exits non-zero (as it did before the fix), a wake whose
    session served and then ended normally is no failed wake: the next request wakes."""
    holder: list[State | None] = [None]
    waker = make_waker(tmp_path, None)
    waker._state = lambda: holder[0]
    waker.command = [sys.executable, "-c", "raise SystemExit(7)"]
    assert waker.on_request() is None and waker.wakes == 1
    assert waker.started_at is not None
    holder[0] = _served_and_ended(reason, waker.started_at + 1)
    wait_until(lambda: not waker.running(), "the wake's process to exit")
    assert waker.last_exit == 7
    assert waker.blocked() is None
    waker.command = ["true"]
    assert waker.on_request() is None and waker.wakes == 2


def test_a_wake_that_never_served_rests(tmp_path: Path) -> None:
    holder: list[State | None] = [None]
    waker = make_waker(tmp_path, None)
    waker._state = lambda: holder[0]
    waker.command = [sys.executable, "-c", "raise SystemExit(7)"]
    assert waker.on_request() is None and waker.started_at is not None
    holder[0] = _ended("idle")  # ended, no pod ever ready
    wait_until(lambda: not waker.running(), "the wake's process to exit")
    why = waker.blocked()
    assert why is not None and "failed" in why and waker.on_request() == why


def test_outside_wake_hours_blocks(tmp_path: Path) -> None:
    window = wake_window_two_hours_on()
    waker = make_waker(tmp_path, None, wake_hours=[window])
    why = waker.on_request()
    assert why is not None and "wake_hours" in why and waker.wakes == 0


def test_wake_hours_windows() -> None:
    assert in_wake_hours(["08:00-20:00"], 8 * 60) and not in_wake_hours(["08:00-20:00"], 20 * 60)
    assert in_wake_hours(["22:00-06:00"], 23 * 60) and in_wake_hours(["22:00-06:00"], 60)
    assert not in_wake_hours(["22:00-06:00"], 12 * 60) and in_wake_hours(None, 0)


def test_wake_needs_the_pod_upstream() -> None:
    with pytest.raises(Exception, match="wake_on_request"):
        build_config({"wake_on_request": True, "upstream_url": "http://127.0.0.1:9"}, environ={})


def test_waker_is_off_without_the_setting(tmp_path: Path) -> None:
    config = build_config({}, base_dir=tmp_path, environ={})
    waker = Waker(config, tmp_path / "c.json", lambda: None, command=["false"])
    assert waker.on_request() is None and waker.wakes == 0 and waker.starting_failure(None) is None
