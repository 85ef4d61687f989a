"""A watchdog pass never imports the `runpod` SDK (~1.5 s); only the GPU catalog does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from podmgr.config import load_config
from podmgr.sim.process import SimProcess, free_port
from podmgr.state import Session, State, StateStore


def end_the_session(config: Path) -> None:
    """A state whose session ended an hour ago, with no pod: a pass has nothing to do."""
    now = time.time()
    ended = Session(started_at=now - 7200, deadline=now - 3600, ended_at=now - 3600,
                    end_reason="deadline")  # fmt: skip
    StateStore(load_config(config, environ={}).state_path).save(State(session=ended), now=now)


SCRIPT = """
import sys
from podmgr.cli import main
codes = [main(["watchdog", "--config", sys.argv[1]]),
         main(["watchdog", "--shutdown", "--config", sys.argv[1]]),
         main(["status", "--live", "--config", sys.argv[1]])]
print("EXIT", codes, "SDK", "runpod" in sys.modules, "requests" in sys.modules)
"""


def test_passes_and_status_do_not_import_the_sdk(sim: SimProcess, tmp_path: Path) -> None:
    config = tmp_path / "pod_config.json"
    config.write_text(
        json.dumps(
            {
                "endpoint_url_template": sim.pod_url_template,
                "proxy_port": free_port(),
                "state_file": "state.json",
            }
        )
    )
    end_the_session(config)
    env = {**sim.env(tmp_path / "home"), "RUNPOD_REST_URL": sim.rest_url}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "EXIT [0, 0, 0] SDK False False" in run.stdout, run.stdout + run.stderr
    assert sim.ledger() == []
