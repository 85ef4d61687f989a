"""`podmgr doctor`'s run: the steps in order, one line each, and the clean-up.

    key       GET /pods works with the key; the RateLimit-Policy RunPod sent
    catalog   the cheapest GPU for a 0.5B model (choice.py)
    bound     the most it can cost: price x deadline; `confirm` is asked after this line
    create    a pod with the guard (and, after a literal start command, one without)
    guard     the guard's armed line in the pod's log, or vLLM refusing the JSON
    serving   the pod's /health answers 200 within the start-up budget
    ask       one chat completion through the real local proxy (ask.py)
    end       the guard ends its pod once idle; doctor ends a pod without one
    cost      podmgr's figure and RunPod's `GET /billing/pods`

A step that fails with a PodmgrError on which later steps depend (no key, no GPU, a create
refused) stops the run with that error, whose code is the exit code (401 -> 3, 402 -> 11).
A step whose failure is a finding (the guard not confirmed, no answer, the guard not ending
its pod) is FAILED and the run goes on: exit 1. RunPod passing the start-command JSON
literally is such a finding: the limits then hold only while watchdog passes run, which a
user relying on the guard must know, and a script running `podmgr doctor --yes` sees it.

Whatever happens (an error, Ctrl-C), `run` terminates every pod doctor created before it
returns or raises. No pod outlives the deadline: the guard ends its own pod there (RunPod's
own timers are not enforced: RUNPOD_FACTS.md), and every wait of doctor stops there too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from podmgr.config import Config
from podmgr.doctor.ask import ask_through_proxy
from podmgr.doctor.choice import (
    MODEL,
    Choice,
    bound_usd,
    cheapest,
    doctor_cid,
    doctor_config,
    doctor_floor,
    minute_left,
)
from podmgr.doctor.pods import DoctorPod, DoctorPods
from podmgr.doctor.report import Meter, Report, Step
from podmgr.errors import CapacityError, ConfigError, PodmgrError
from podmgr.guard.launch import guard_problem
from podmgr.runpod.client import RunPodClient
from podmgr.runpod.wire import PodBillingRecord
from podmgr.state import Session
from podmgr.watchdog.clock import Clock, SystemClock

__all__ = ["Doctor", "DoctorOptions"]

# Beyond idle + 3 guard intervals: RunPod's terminate and doctor's next look at the pod.
END_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class DoctorOptions:
    """What the command line decides; times in seconds."""

    config: Config
    config_path: Path
    deadline_seconds: float = 1200.0
    idle_seconds: int = 120
    startup_seconds: float = 1200.0
    max_usd: float | None = None
    poll_seconds: float = 10.0


class Doctor:
    """One doctor run; `emit` gets each step as it is decided, `confirm` the spending."""

    def __init__(
        self,
        options: DoctorOptions,
        *,
        confirm: Callable[[str], bool],
        emit: Callable[[Step], None],
        client: RunPodClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        cfg = options.config
        self.options = options
        self.confirm = confirm
        self.emit = emit
        self.clock = clock or SystemClock()
        self.client = client or RunPodClient(
            retry_initial_seconds=cfg.watchdog.api_retry_initial_seconds,
            retry_max_seconds=cfg.watchdog.api_retry_max_seconds,
        )
        self.meter = Meter()
        self.report = Report()
        self.started = self.clock.now()
        self.pods: DoctorPods | None = None
        self.config = cfg  # doctor's pod config once chosen
        self.deadline = self.started + options.deadline_seconds  # from the create, then

    # --- the run -------------------------------------------------------------------------
    def run(self) -> Report:
        """Every step; pods terminated before this returns or raises (Ctrl-C included)."""
        try:
            self._steps()
        except PodmgrError as error:
            self.report.error = error
        finally:
            self._clean_up()
        if self.pods is not None and self.pods.created:
            self._cost()
        return self.report

    def _steps(self) -> None:
        with self._failing_as("key"):
            self._key()
        with self._failing_as("catalog"):
            choice = self._choose()
        with self._failing_as("bound"):
            bound = self._bound(choice)
        question = f"one pod on {choice.display_name} ({choice.cloud}), at most ${bound:.2f}"
        if not self.confirm(question):
            self._record("confirm", False, "declined: nothing was created")
            return
        with self._failing_as("create"):
            pod = self._first_pod(choice, bound)
        pod, confirmed = self._guard(pod)
        answered_at = self._ask(pod) if self._serving(pod) else None
        self._end(pod, confirmed, answered_at)

    # --- steps ---------------------------------------------------------------------------
    def _key(self) -> None:
        rest = self.client.rest()
        pods = self.client.call("list_pods", rest.list_pods)
        left = minute_left(rest.rate_windows)
        self._record(
            "key",
            True,
            f"key accepted ({len(pods)} pods on the account); RateLimit-Policy "
            f"{rest.rate_policy or '(not sent)'}; "
            f"{'?' if left is None else f'{left:g}'} calls left this minute",
        )

    def _choose(self) -> Choice:
        floor = doctor_floor(self.options.config.pod)
        catalog = self.client.gpu_catalog(1, min_cuda=floor, clouds=("SECURE", "COMMUNITY"))
        choice = cheapest(catalog, floor)
        if choice is None:
            raise CapacityError(
                f"no GPU type in RunPod's catalog has stock, >= 8 GB and CUDA {floor} or newer "
                f"in either cloud ({len(catalog)} types listed): try again later"
            )
        self._record("catalog", True, choice.describe())
        return choice

    def _bound(self, choice: Choice) -> float:
        minutes = self.options.deadline_seconds / 60
        bound = bound_usd(choice.price, self.options.deadline_seconds)
        found = (
            f"at most ${bound:.2f}: ${choice.price:.2f}/h x {minutes:g} min deadline, "
            "the guard's and doctor's hard bound"
        )
        cap = self.options.max_usd
        if cap is not None and bound > cap:
            raise ConfigError(
                f"the run may cost ${bound:.2f}, more than ${cap:.2f}: raise --max-usd or "
                "lower --deadline-minutes",
                field="--max-usd",
            )
        self._record("bound", True, found)
        return bound

    def _first_pod(self, choice: Choice, bound: float) -> DoctorPod:
        opts, now = self.options, self.clock.now()
        self.config = doctor_config(
            opts.config, choice, deadline_seconds=opts.deadline_seconds,
            idle_seconds=opts.idle_seconds, bound=bound,
        )  # fmt: skip
        session = Session(started_at=now, deadline=now + opts.deadline_seconds)
        self.deadline = session.deadline
        self.pods = DoctorPods(
            self.client, self.config, doctor_cid(opts.config_path), session, self.meter,
            self.clock, poll_seconds=opts.poll_seconds, price=choice.price,
        )  # fmt: skip
        self.report.pods = self.pods.created
        pod = self.pods.create(guard=True)
        limits = (
            f"guard on: deadline {opts.deadline_seconds / 60:g} min, idle "
            f"{opts.idle_seconds}s, budget ${bound:.2f}"
            if pod.guarded
            else "without the guard"
        )
        self._record("create", True, f"pod {pod.id} ({pod.name}), {limits}")
        return pod

    def _guard(self, pod: DoctorPod) -> tuple[DoctorPod, bool]:
        """Whether the guard runs in the pod; after a literal start command, the pod is
        replaced by one without the guard (podmgr/guard/check.py)."""
        pods = self._pods()
        if not pod.guarded:
            self._record("guard", False, f"not tried: {guard_problem(self.config)}")
            return pod, False
        with self._failing_as("guard"):
            finding = pods.guard_finding(pod, self._startup_until(pod))
        if finding is None:
            self._record("guard", False, "no armed line in the pod's log in the start-up budget")
            return pod, False
        if finding.confirmed:
            self._record("guard", True, "confirmed: the guard's armed line is in the pod's log")
            return pod, True
        self._record(
            "guard",
            False,
            "NOT confirmed: RunPod passed the start-command JSON literally (vLLM: "
            "unrecognized arguments)",
        )
        with self._failing_as("create"):
            pods.terminate(pod.id)
            second = pods.create(guard=False)
        self._record(
            "create", True, f"pod {second.id} ({second.name}), without the guard, in place of "
            f"pod {pod.id} (terminated)",
        )  # fmt: skip
        return second, False

    def _serving(self, pod: DoctorPod) -> bool:
        with self._failing_as("serving"):
            last = self._pods().wait_serving(pod, self._startup_until(pod))
        waited = self.clock.now() - pod.created_at
        if last is None:
            self._record("serving", True, f"pod {pod.id}: /health 200, {waited:.0f}s after create")
            return True
        self._record("serving", False, f"pod {pod.id} not serving after {waited:.0f}s ({last})")
        return False

    def _ask(self, pod: DoctorPod) -> float | None:
        """The time of the answer (the pod's last activity), None when there was none."""
        try:
            answer = ask_through_proxy(
                pod_id=pod.id, pod_name=pod.name, gpu_type_id=self.config.pod.gpu_type_ids[0],
                endpoint_url=self.config.pod.pod_url(pod.id), vllm_key=pod.vllm_key, model=MODEL,
                session=self._pods().session,
            )  # fmt: skip
        except PodmgrError as error:
            self._record("ask", False, f"no answer through the proxy: {error.message}")
            return None
        self._record(
            "ask",
            True,
            f'"{answer.first_words} ..." in {answer.latency_seconds:.2f}s through the proxy '
            f"at {answer.proxy_url}",
        )
        return self.clock.now()

    def _end(self, pod: DoctorPod, confirmed: bool, answered_at: float | None) -> None:
        pods = self._pods()
        if not confirmed or answered_at is None:
            with self._failing_as("end"):
                pods.terminate(pod.id)
            if confirmed:
                untested = "no answer came, so the guard's idle limit is untested"
                self._record("end", False, f"doctor terminated pod {pod.id}: {untested}")
            else:
                self._record(
                    "end",
                    True,
                    f"doctor terminated pod {pod.id}: with no guard in the pod, the limits "
                    "hold only while watchdog passes run",
                )
            return
        interval = self.config.guard.interval_seconds
        wait = self.options.idle_seconds + 3 * interval + END_MARGIN_SECONDS
        until = min(answered_at + wait, self.deadline)
        with self._failing_as("end"):
            gone_at = pods.wait_gone(pod, until)
            if gone_at is None:
                pods.terminate(pod.id)
        if gone_at is None:
            waited = self.clock.now() - answered_at
            self._record(
                "end", False, f"pod {pod.id} still there {waited:.0f}s after the last request; "
                "doctor terminated it",
            )  # fmt: skip
            return
        idle = gone_at - answered_at
        self._record("end", True, f"guard ended the pod after {idle:.0f}s idle")

    def _cost(self) -> None:
        """podmgr's figure beside RunPod's records (RunPod bills every 5 minutes, per
        second: docs accounts-billing/billing; so its figure may lag)."""
        now = self.clock.now()
        uses = self.meter.pods.values()
        ours = ", ".join(f"{u.pod_id} {u.seconds(now):.0f}s x ${u.rate_per_hr:.2f}/h" for u in uses)
        head = f"podmgr: ${self.meter.billed(now):.4f} ({ours})"
        try:
            billed = self._runpod_billed()
        except PodmgrError as error:
            self._record("cost", False, f"{head}; RunPod's billing unreadable: {error.message}")
            return
        self._record(
            "cost",
            True,
            f"{head}; RunPod's GET /billing/pods: ${billed:.4f} so far (RunPod bills every "
            "5 minutes: its figure may lag)",
        )

    def _runpod_billed(self) -> float:
        """RunPod's `totalAmount` for doctor's pods since the day it started (listPodBilling)."""
        rest, total = self.client.rest(), 0.0
        day = dt.datetime.fromtimestamp(self.started, dt.UTC).strftime("%Y-%m-%dT00:00:00Z")
        for pod_id in self.meter.pods:

            def read(pod_id: str = pod_id) -> list[PodBillingRecord]:
                return rest.pod_billing(start_time=day, pod_id=pod_id)

            total += sum(record.total_amount for record in self.client.call("pod_billing", read))
        return total

    def _clean_up(self) -> None:
        if self.pods is None:
            return
        try:
            done = self.pods.terminate_all()
        except PodmgrError as error:
            left = ", ".join(self.meter.alive()) or "pods of unanswered creates"
            self._record(
                "cleanup", False, f"could not terminate {left}: {error.message}; see RunPod's "
                "console",
            )  # fmt: skip
            self.report.error = self.report.error or error
            return
        if done:
            self._record("cleanup", True, f"terminated {', '.join(done)}: no pod left billing")

    # --- plumbing ------------------------------------------------------------------------
    def _pods(self) -> DoctorPods:
        assert self.pods is not None, "a step on pods ran before the first create"
        return self.pods

    def _startup_until(self, pod: DoctorPod) -> float:
        return min(pod.created_at + self.options.startup_seconds, self.deadline)

    @contextlib.contextmanager
    def _failing_as(self, name: str) -> Iterator[None]:
        """A PodmgrError inside is this step's FAILED line, then stops the run."""
        try:
            yield
        except PodmgrError as error:
            self._record(name, False, error.message)
            raise

    def _record(self, name: str, ok: bool, found: str) -> None:
        now = self.clock.now()
        step = Step(name, ok, found, now - self.started, self.meter.billed(now))
        self.report.steps.append(step)
        self.emit(step)
