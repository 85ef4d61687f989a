"""`apply`: perform the planned actions, recording each in the state file before the next.

Every mutation is safe to have half-succeeded, because RunPod can make a change and still
answer an error (runpodctl#45, transformerlab-app#2305; ../shared/RUNPOD_FACTS.md):
  - create: the pod's name is saved (`pending_create`) before the call, its id the moment
    RunPod returns it; a lost answer is found again by name (the client's retry, then
    plan's adopt rule), never answered with a second pod. A create RunPod refused outright
    (`refused_outright`: a clear 4xx, or GPU ids the catalog lacks) made nothing: no
    `pending_create` is kept, and when no other candidate can follow the session ends
    (`create_refused`) and the proxy stops, so a `podmgr up` that exits 2 leaves nothing
    running (issue 22);
  - restart: counted and saved (phase "restarting") before the stop and start, so a start
    that answered an error after starting the pod is counted once and the next pass sees
    a restarting pod, not a ready one;
  - terminate: a pod already gone counts as terminated.
Errors that should not stop the rest of the pass (the proxy failing to start, a pod given
up on, a crash loop) are raised after the remaining actions have run; API errors stop the
pass at once (the state already holds everything done so far).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from podmgr.config import Config
from podmgr.errors import (
    ApiError,
    AuthError,
    BalanceError,
    CapacityError,
    ConfigError,
    ContractError,
    CrashLoopError,
    PodFailedError,
    PodmgrError,
    ProxyError,
    StartupError,
)
from podmgr.guard.launch import guard_limits
from podmgr.history import record_session_end
from podmgr.logs import get_logger
from podmgr.runpod.client import PodSpec, RunPodClient
from podmgr.runpod.gpu_ids import unknown_ids, unknown_ids_message
from podmgr.runpod.placement import Candidate, Placement, clouds_of, place
from podmgr.state import PendingCreate, PodRecord, Session, State, StateStore
from podmgr.watchdog import actions as act
from podmgr.watchdog.accounting import accrue_pod
from podmgr.watchdog.clock import Clock
from podmgr.watchdog.focus import counting_for, guard_budget, guard_session, pod_config
from podmgr.watchdog.identity import VLLM_KEY_ENV, new_pod_name, new_vllm_key
from podmgr.watchdog.plan_set import NOT_ASKED, ChoosePods, EndPod, ForPod, SetAction
from podmgr.watchdog.proxy_supervisor import ProxySupervisor
from podmgr.watchdog.readiness import HealthProbe
from podmgr.watchdog.spec import pod_spec

__all__ = ["Applier", "Deps", "refused_outright"]

log = get_logger("watchdog")


@dataclass
class Deps:
    """Everything apply touches, injected (tests pass a fake clock or a stand-in proxy)."""

    config: Config
    config_path: Path
    cid: str
    client: RunPodClient
    supervisor: ProxySupervisor
    store: StateStore
    clock: Clock
    probe: HealthProbe
    emit: Callable[[str], None] = lambda _line: None


@dataclass
class Applier:
    """Runs one plan; `replan` is set when the next round should observe again (adopt)."""

    deps: Deps
    replan: bool = False
    deferred: list[PodmgrError] = field(default_factory=list)
    # Pods terminated in this pass: a shutdown terminates before it ends the session.
    terminated: list[PodRecord] = field(default_factory=list)
    # While a `ForPod` runs: the whole config of the set and the pod's name.
    focus: tuple[Config, str] | None = None

    def run(self, actions: Sequence[SetAction], state: State) -> State:
        failed: set[str] = set()  # pods of a set whose action failed in this pass
        for action in actions:
            if isinstance(action, ForPod) and action.pod in failed:
                continue
            line = _line(action, state)
            if line is not None:
                self.deps.emit(line)
            log.info("action", action=type(action).__name__, detail=action.describe())
            try:
                self._dispatch(action, state)
            except BalanceError:
                self._balance_at_zero(state)
                raise
            except PodmgrError as error:
                if not isinstance(action, ForPod):
                    raise
                # One pod's failure must not keep the others' actions (their limits
                # included) from running: its remaining actions wait for the next pass,
                # and the error ends this pass once the others ran.
                self._pod_failed(action.pod, error, failed)
            if _worth_recording(action):  # history stays short
                state.record(self.deps.clock.now(), type(action).__name__, action.describe())
            self.deps.store.save(state, now=self.deps.clock.now())
            if self.replan:
                break
        return state

    def _pod_failed(self, name: str, error: PodmgrError, failed: set[str]) -> None:
        log.warning("pod_action_failed", pod=name, error=error.message)
        self.deps.emit(f"   [{name}] failed: {error.message}; its next actions wait a pass")
        self.deferred.append(error)
        failed.add(name)

    def _balance_at_zero(self, state: State) -> None:
        """RunPod refused a create or start for the balance at $0: no retry, resume or
        recreate can help, so the session ends now (reason `balance_zero`, exit code 11)
        and the pod (every pod of a set), stopped by RunPod, is terminated so nothing of
        ours is left."""
        now = self.deps.clock.now()
        state.pending_creates = {}
        if state.session is not None and state.session.active:
            state.session.ended_at, state.session.end_reason = now, "balance_zero"
            self._to_history(state)
        for name in list(state.pods):
            with state.focused(name):
                record = state.pod
                assert record is not None
                try:
                    self._terminate(state, record.id)
                except PodmgrError as error:  # the next pass, session ended, terminates it
                    log.warning("terminate_failed", pod_id=record.id, error=error.message)
        state.record(now, "EndSession", "balance_zero: RunPod refused to start a pod")
        self.deps.store.save(state, now=now)
        self.deps.emit("   the account's balance is at $0: the session ended; add funds")

    def _to_history(self, state: State) -> None:
        """Append the session that just ended to the history (podmgr/history.py); a
        history that cannot be written is logged, never a reason to fail the pass."""
        try:
            record_session_end(self.deps.store.path, state, self.deps.clock.now(), self.terminated)
        except OSError as error:
            log.warning("history_not_written", error=str(error))

    def raise_deferred(self) -> None:
        if self.deferred:
            raise self.deferred[0]

    def _dispatch(self, action: SetAction, state: State) -> None:
        """One handler per action class; mypy proves the match exhaustive (assert_never)."""
        match action:
            case ForPod():
                self._for_pod(action, state)
            case ChoosePods():
                self._choose(action, state)
            case act.StartSession():
                self._start_session(action, state)
            case act.EndSession():
                self._end_session(action, state)
            case act.CreatePod():
                self._create(action, state)
            case act.PodProgress():
                self._progress(action, state)
            case act.MarkReady():
                self._mark_ready(state)
            case act.NoteLog():
                self._note_guard(action, state)
            case act.AbandonPod():
                self._abandon(action, state)
            case act.RestartPod():
                self._restart(action, state)
            case act.ResumePreempted():
                self._resume_preempted(action, state)
            case act.TerminatePod():
                self._terminate(state, action.pod_id)
            case act.AdoptPod():
                self._adopt(action, state)
            case act.ForgetPod():
                self._forget(action, state)
            case act.ForgetCreate():
                state.pending_create = None
            case act.StartProxy():
                self._start_proxy(state)
            case act.StopProxy():
                self._stop_proxy(action, state)
            case act.Noop():
                pass
            case _:
                assert_never(action)

    def _for_pod(self, action: ForPod, state: State) -> None:
        """Today's handler for one pod of a set: its one-pod config, the state focused on
        its record (focus.py)."""
        whole = self.deps.config
        self.deps.config, self.focus = pod_config(whole, action.pod), (whole, action.pod)
        try:
            with state.focused(action.pod), counting_for(state.session, action.pod):
                if isinstance(action.action, EndPod):
                    self._end_pod(action.pod, action.action, state)
                else:
                    self._dispatch(action.action, state)
        finally:
            self.deps.config, self.focus = whole, None

    def _end_pod(self, name: str, action: EndPod, state: State) -> None:
        """One pod ended alone: the session notes it (plan_set keeps it down)."""
        if state.session is not None and state.session.active:
            state.session.ended_pods = {**state.session.ended_pods, name: action.reason}

    def _choose(self, action: ChoosePods, state: State) -> None:
        """`podmgr up NAME...`: these run; in a new session the others are left out."""
        if state.session is None:
            return
        ended = {k: v for k, v in state.session.ended_pods.items() if k not in action.started}
        ended.update({name: NOT_ASKED for name in action.left_out})
        state.session.ended_pods = ended

    def _guard_session(self, state: State) -> Session | None:
        """The session as the guard of the pod being created is told it (focus.py)."""
        if self.focus is None:
            return state.session
        return guard_session(state.session, *self.focus)

    def _start_session(self, action: act.StartSession, state: State) -> None:
        state.session = Session(started_at=action.started_at, deadline=action.deadline)

    def _end_session(self, action: act.EndSession, state: State) -> None:
        if state.session is not None and state.session.active:
            state.session.ended_at = self.deps.clock.now()
            state.session.end_reason = action.reason
            self._to_history(state)
        if action.reason == "crash_loop":
            self.deferred.append(CrashLoopError(f"crash loop, session ended: {action.detail}"))
        if action.reason == "no_container":
            self.deferred.append(StartupError(f"session ended: {action.detail}"))
        if action.reason == "pod_failed":
            self.deferred.append(PodFailedError(f"session ended: {action.detail}"))

    def _check_network_volume(self) -> None:
        """The volume exists and lies in one of `data_center_ids` (else exit 2)."""
        cfg = self.deps.config
        if not cfg.pod.network_volume_id:
            return
        where = self.deps.client.network_volume_data_center(cfg.pod.network_volume_id)
        if cfg.pod.data_center_ids and where not in cfg.pod.data_center_ids:
            raise ConfigError(
                f"{', '.join(cfg.pod.data_center_ids)} does not include {where}, the data center "
                f"of network volume {cfg.pod.network_volume_id}; a pod with it runs only there",
                field="data_center_ids",
            )

    def _create(self, action: act.CreatePod, state: State) -> None:
        """Create, or after an outright refusal end the session and stop the proxy."""
        try:
            self._try_candidates(action, state)
        except BalanceError:
            state.pending_create = None  # `run` ends the session (balance_zero)
            raise
        except PodmgrError as error:
            if not refused_outright(error):
                raise
            state.pending_create = None  # refused before anything was made
            self._refused(state, error)
            raise

    def _refused(self, state: State, error: PodmgrError) -> None:
        """RunPod refused the create in a way no later pass can change (a GPU id it does
        not know, a key it rejects, a body it cannot take): end the session, stop the
        proxy (kept with wake_on_request; the reason allows no wake), say what to fix."""
        now = self.deps.clock.now()
        if state.session is not None and state.session.active:
            state.session.ended_at, state.session.end_reason = now, "create_refused"
            self._to_history(state)
        state.record(now, "EndSession", f"create_refused: {error.message}")
        pid = state.proxy_pid
        if pid is not None and not self.deps.config.limits.wake_on_request:
            try:
                self.deps.supervisor.stop(pid)
                state.proxy_pid = None
            except ProxyError as stop_error:
                log.warning("proxy_not_stopped", pid=pid, error=stop_error.message)
        self.deps.store.save(state, now=now)
        self.deps.emit("   RunPod refused the create outright: the session ended; fix the config")

    def _try_candidates(self, action: act.CreatePod, state: State) -> None:
        """Try the placement's candidates in order (podmgr/runpod/placement.py): a refusal
        of one (400, 403, no spot offer) moves to the next; 402 and 422 stop at once."""
        cfg, clock = self.deps.config, self.deps.clock
        self._check_network_volume()
        placement = self._placement(action.gpu_type_ids)
        errors = list(placement.skipped)
        refusals: list[int] = []
        others = self._other_prices(state) if self.focus is not None else {}
        for candidate in placement.candidates:
            gpu, cloud = candidate.gpu_type_id, candidate.cloud
            name = new_pod_name(cfg.pod.pod_name_prefix, self.deps.cid)
            key = new_vllm_key()
            # Outside the try: a bad env value is the config's fault (exit 2), not a GPU's.
            spec = pod_spec(
                self._with_share(state, candidate, others), self.deps.cid, name, gpu, key, cloud,
                spot=action.spot, session=self._guard_session(state), now=clock.now(),
                guard=state.start_command_json is not False,
            )  # fmt: skip
            # Saved before the call: a create answered with an error may have made the pod.
            state.pending_create = PendingCreate(name=name, gpu_type_id=gpu, at=clock.now())
            self.deps.store.save(state, now=clock.now())
            try:
                pod_id = self.deps.client.create_pod(spec)
            except CapacityError as error:  # PlacementError (400/403) or no spot offer
                state.pending_create = None  # refused before anything was made
                refusals.append(getattr(error, "status", 400))
                errors.append(f"{gpu} ({cloud}): {error.message}")
                self.deps.emit(f"   {gpu} ({cloud}) refused: {error.message}; trying the next")
                continue
            self._created(action, state, spec, pod_id, candidate)
            return
        state.record(clock.now(), "CreatePod failed", "; ".join(errors))
        self.deps.store.save(state, now=clock.now())
        if refusals and all(status == 403 for status in refusals):
            raise AuthError(
                "RunPod answered 403 to every create ("
                + "; ".join(errors)
                + "): the API key (RUNPOD_API_KEY) may be read-only or lack access to these "
                "pools: give it read/write permission"
            )
        raise CapacityError("no GPU type could be placed: " + "; ".join(errors))

    def _with_share(
        self, state: State, candidate: Candidate, others: dict[str, float | None]
    ) -> Config:
        """The config a set's pod is created with: its guard's budget the share of the
        budget `guard_budget` gives it at this candidate's price (focus.py)."""
        cfg = self.deps.config
        if self.focus is None:
            return cfg
        whole, pod = self.focus
        price = candidate.price * cfg.pod.gpu_count if candidate.price is not None else None
        share = guard_budget(whole, state, pod, {**others, pod: price})
        return cfg.model_copy(
            update={"limits": cfg.limits.model_copy(update={"max_cost_usd": share})}
        )

    def _other_prices(self, state: State) -> dict[str, float | None]:
        """$/h of the set's other pods: a record's price, else its first catalog candidate's
        (None when unknown): the weights of the guard shares."""
        assert self.focus is not None
        whole, pod = self.focus
        mine = self.deps.config
        prices: dict[str, float | None] = {}
        try:
            for other in whole.pod_names:
                record = state.pods.get(other)
                if other == pod:
                    continue
                if record is not None and record.cost_per_hr > 0:
                    prices[other] = record.cost_per_hr
                    continue
                self.deps.config = pod_config(whole, other)
                first = next(
                    iter(self._placement(tuple(self.deps.config.pod.gpu_type_ids)).candidates), None
                )
                count = self.deps.config.pod.gpu_count
                prices[other] = first.price * count if first and first.price is not None else None
        except PodmgrError as error:  # weights only: equal shares then (guard_budget)
            log.warning("share_prices_unread", error=error.message)
        finally:
            self.deps.config = mine
        return prices

    def _placement(self, gpu_type_ids: tuple[str, ...]) -> Placement:
        """The candidates from RunPod's catalog; every configured pair when it cannot be
        read (a create must not wait on the catalog)."""
        cfg = self.deps.config
        exact = tuple(cfg.pod.allowed_cuda_versions or ())
        floor = None if exact else cfg.pod.cuda_floor
        try:
            catalog = self.deps.client.gpu_catalog(
                cfg.pod.gpu_count, min_cuda=floor, clouds=clouds_of(cfg.pod.cloud_type)
            )
        except (AuthError, BalanceError):
            raise
        except ApiError as error:
            log.warning("catalog_unread", error=error.message)
            catalog = None
        if catalog is not None and len(unknown := unknown_ids(gpu_type_ids, catalog)) == len(
            gpu_type_ids
        ):  # not one id RunPod knows: no candidate is left to try (issue 22)
            raise ConfigError(unknown_ids_message(unknown, catalog), field="pod.gpu_type_id")
        return place(gpu_type_ids, cfg.pod.cloud_type, catalog, min_cuda=floor, exact_cuda=exact)

    def _created(
        self,
        action: act.CreatePod,
        state: State,
        spec: PodSpec,
        pod_id: str,
        candidate: Candidate,
    ) -> None:
        cfg, now = self.deps.config, self.deps.clock.now()
        state.pending_create = None
        state.pod = PodRecord(
            id=pod_id,
            name=spec.name,
            gpu_type_id=candidate.gpu_type_id,
            created_at=now,
            phase="starting",
            endpoint_url=cfg.pod.pod_url(pod_id),
            vllm_api_key=spec.env.get(VLLM_KEY_ENV, ""),
            interruptible=action.spot,
            guard=guard_limits(spec.env),
        )
        if action.replaces_lost_pod:
            _count_restart(state, now)
        log.info("pod_created", pod_id=pod_id, gpu=candidate.gpu_type_id, cloud=candidate.cloud)
        price = f" at ${candidate.price * cfg.pod.gpu_count:.2f}/h" if candidate.price else ""
        budget = cfg.startup.budget_seconds
        self.deps.emit(
            f"   pod {pod_id} created on {candidate.gpu_type_id} ({candidate.cloud}){price}; "
            f"it has {budget:.0f}s to serve"
        )

    def _note_guard(self, action: act.NoteLog, state: State) -> None:
        """Record what the pod's log said of its guard; a finding holds for later pods."""
        pod = state.pod
        if pod is None or pod.id != action.pod_id:
            return
        pod.log_cursor, pod.log_read_at = action.cursor, action.read_at
        pod.log_phase = action.phase or pod.log_phase
        if action.phase:  # said by its line: the pass's progress line would say it again
            pod.progress_text = f"{action.phase} (from the pod's log)"
        if action.confirmed is None:
            return
        pod.guard_confirmed, pod.guard_why = action.confirmed, action.why
        state.start_command_json = action.confirmed
        self.deps.emit(f"-> {action.describe()}")
        if not action.confirmed:
            self.deps.emit("   later pods are made without the guard (the finding is kept)")

    def _progress(self, action: act.PodProgress, state: State) -> None:
        pod, now = state.pod, self.deps.clock.now()
        if pod is None or pod.id != action.pod_id:
            return
        if pod.progress != action.phase:
            pod.progress, pod.progress_since = action.phase, now
        pod.progress_text = action.text
        if action.phase in ("loading", "serving") and pod.container_seen_at is None:
            pod.container_seen_at = now

    def _mark_ready(self, state: State) -> None:
        pod, now = state.pod, self.deps.clock.now()
        assert pod is not None
        pod.phase, pod.ready_at, pod.unhealthy_since = "ready", now, None
        pod.progress, pod.progress_since = "serving", now
        pod.container_seen_at = pod.container_seen_at or now

    def _abandon(self, action: act.AbandonPod, state: State) -> None:
        self._terminate(state, action.pod_id)
        _count_restart(state, self.deps.clock.now())
        if action.replace and state.session is not None:
            state.session.no_container_replacements += 1
            self.deps.emit(f"   {action.reason}")
            return
        self.deferred.append(StartupError(f"pod {action.pod_id} terminated: {action.reason}"))

    def _restart(self, action: act.RestartPod, state: State) -> None:
        client, clock, pod = self.deps.client, self.deps.clock, state.pod
        assert pod is not None and pod.id == action.pod_id
        live = client.get_pod(pod.id)
        # Counted and saved first: a start that answers an error after starting the pod
        # must not be counted again, nor leave a "ready" pod that the next pass restarts.
        now = clock.now()
        _count_restart(state, now)
        pod.phase, pod.restarts, pod.last_restart_at = "restarting", pod.restarts + 1, now
        pod.ready_at = pod.container_seen_at = pod.progress = pod.progress_since = None
        pod.progress_text = pod.log_phase = None
        self.deps.store.save(state, now=now)
        try:
            if live is not None and live.running:
                client.stop_pod(pod.id)
            client.resume_pod(pod.id, live.gpu_count if live else self.deps.config.pod.gpu_count)
        except CapacityError as error:
            self.deps.emit(f"   resume failed ({error.message}); recreating the pod")
            self._terminate(state, pod.id)
            gpus = tuple(self.deps.config.pod.gpu_type_ids)
            self._create(act.CreatePod(gpus, spot=pod.interruptible), state)

    def _resume_preempted(self, action: act.ResumePreempted, state: State) -> None:
        """Count the preemption (saved first), then resume the spot pod, or replace it by
        an on-demand pod; a host without a free GPU means a fresh create."""
        clock, pod, session = self.deps.clock, state.pod, state.session
        assert pod is not None and pod.id == action.pod_id
        now = clock.now()
        if session is not None:
            session.preemptions = action.preemption
        gpus = tuple(self.deps.config.pod.gpu_type_ids)
        if action.on_demand:
            self._terminate(state, pod.id)
            self._create(act.CreatePod(gpus, spot=False), state)
            return
        pod.phase, pod.last_restart_at = "restarting", now
        pod.ready_at = pod.container_seen_at = pod.progress = pod.progress_since = None
        pod.progress_text = pod.log_phase = None
        self.deps.store.save(state, now=now)
        try:
            self.deps.client.resume_pod(pod.id, self.deps.config.pod.gpu_count)
        except CapacityError as error:
            self.deps.emit(f"   resume failed ({error.message}); creating another spot pod")
            self._terminate(state, pod.id)
            self._create(act.CreatePod(gpus, spot=True), state)

    def _terminate(self, state: State, pod_id: str) -> None:
        gone_now = self.deps.client.terminate_pod(pod_id)
        if state.pod is not None and state.pod.id == pod_id:
            if state.session is not None:
                accrue_pod(state.session, state.pod, self.deps.clock.now(), state.focus)
            self.terminated.append(state.pod.model_copy())
            state.pod = None
        log.info("pod_terminated", pod_id=pod_id, already_gone=not gone_now)

    def _adopt(self, action: act.AdoptPod, state: State) -> None:
        cfg, now = self.deps.config, self.deps.clock.now()
        live = self.deps.client.get_pod(action.pod_id)
        if live is None:
            self.replan = True
            return
        state.pending_create = None
        self.replan = True  # the next round observes the adopted pod's phase
        state.pod = PodRecord(
            id=live.id,
            name=live.name,
            gpu_type_id="(adopted)",
            cost_per_hr=live.cost_per_hr,
            created_at=now - action.uptime_seconds,
            phase="starting",
            endpoint_url=cfg.pod.pod_url(live.id),
            vllm_api_key=live.env.get(VLLM_KEY_ENV, ""),
            interruptible=live.interruptible,
            guard=guard_limits(live.env),
        )

    def _forget(self, action: act.ForgetPod, state: State) -> None:
        if state.pod is not None and state.pod.id == action.pod_id:
            state.pod = None

    def _start_proxy(self, state: State) -> None:
        try:
            pid = self.deps.supervisor.start(hung_pid=state.proxy_pid)
        except ProxyError as error:
            self.deps.emit(f"   {error.message}")
            self.deferred.append(error)
            return
        state.proxy_pid, state.proxy_started_at = pid, self.deps.clock.now()
        self.deps.emit(f"   proxy pid {pid} on {self.deps.config.proxy.url}")

    def _stop_proxy(self, action: act.StopProxy, state: State) -> None:
        self.deps.supervisor.stop(action.pid)
        if state.proxy_pid == action.pid:
            state.proxy_pid = None


def refused_outright(error: PodmgrError) -> bool:
    """RunPod (or the catalog) said no to a create in a way that made nothing and that
    trying again cannot change: the config's fault (exit 2), the key (401, or 403 to every
    candidate), the body (422), or another clear 4xx (404: no such template or volume).
    Not capacity (the next pass may find room), 409, 429, 5xx or no answer: those may
    have made the pod, or may work later."""
    if isinstance(error, ConfigError | AuthError | ContractError):
        return True
    status = error.status if type(error) is ApiError else None
    return status is not None and 400 <= status < 500 and status not in (409, 429)


def _line(action: SetAction, state: State) -> str | None:
    """What a person sees of an action: one line per change of a starting pod's phase
    (`[  35s] pod X: weights loaded ...`, each phase its log showed), nothing for the log's
    bookkeeping (apply says a guard finding itself), `-> ...` for every decision."""
    match action:
        case ForPod():
            if isinstance(action.action, EndPod):
                return f"-> [{action.pod}] {action.action.describe()}"
            with state.focused(action.pod):
                line = _line(action.action, state)
            return None if line is None else f"[{action.pod}] {line}"
        case act.NoteLog(phases=phases) if phases:
            return "\n".join(
                f"[{action.elapsed:4.0f}s] pod {action.pod_id}: {p} (from the pod's log)"
                for p in phases
            )
        case act.NoteLog():
            return None
        case act.PodProgress():
            pod = state.pod
            same = pod is not None and pod.id == action.pod_id and pod.progress_text == action.text
            return None if same else action.describe()
        case act.MarkReady():
            return action.describe()
    return f"-> {action.describe()}"


def _worth_recording(action: SetAction) -> bool:
    """Progress, no-ops and a guard not seen yet stay out of the state's short history."""
    if isinstance(action, ForPod):
        return isinstance(action.action, EndPod) or _worth_recording(action.action)
    if isinstance(action, act.NoteLog):
        return action.confirmed is not None
    return not isinstance(action, act.Noop | act.PodProgress)


def _count_restart(state: State, now: float) -> None:
    if state.session is not None:
        state.session.restarts += 1
        state.session.last_restart_at = now
