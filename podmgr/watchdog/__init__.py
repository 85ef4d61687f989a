"""The watchdog: a reconciler that keeps one pod per session and never loses a billing pod.

Modules, one concept each:
  observed.py / observe.py   what a pass sees (shapes / gathering)
  session.py                 when sessions start and end (pure rules)
  accounting.py              cost so far and last request time (pure)
  actions.py / plan.py       the decisions (pure)
  apply.py                   the side effects, recorded in the state after each action
  readiness.py               a starting pod's phases (runtime, vLLM /health), pure
  proxy_supervisor.py        starting, checking and stopping the local proxy
  runner.py                  one pass (lock, rounds of observe-plan-apply, dry run), and
                             `podmgr up`'s loop of passes until the pod serves

The commands around it (status, --refresh-catalog, demo) live in podmgr/cli/.

Nothing is imported here, so `podmgr status` pays only for what it uses.
"""
