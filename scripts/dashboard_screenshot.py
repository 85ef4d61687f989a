"""Send some editor-like traffic to a running proxy, then screenshot its dashboard.

    make run          # in one terminal (the demo: simulator, watchdog, proxy on :8000)
    .venv/bin/python scripts/dashboard_screenshot.py --out docs/dashboard.png

Requests go through the `openai` SDK to http://127.0.0.1:8000/v1: chats (some asked twice,
so the cache answers), some streamed (time to first token), over `--seconds`. Then headless
Chromium (Debian's `chromium`) renders /dashboard to a PNG. Loopback only; bounded loops.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from openai import OpenAI


def send_traffic(base_url: str, seconds: float, seed: int) -> int:
    client = OpenAI(base_url=base_url + "/v1", api_key="sk-local-demo", max_retries=0)
    model = client.models.list().data[0].id
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]  # new questions each run, so some miss the cache
    topics = [f"explain function {n}" for n in range(12)]
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline and sent < 2000:
        prompt = rng.choice(topics) if rng.random() < 0.4 else f"refactor {run} {rng.random():.6f}"
        messages = [{"role": "user", "content": prompt}]
        if rng.random() < 0.3:
            for _ in client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=24,
                stream=True,  # type: ignore[arg-type]
            ):
                pass
        else:
            client.chat.completions.create(model=model, messages=messages, max_tokens=24)  # type: ignore[arg-type]
        sent += 1
        time.sleep(rng.uniform(0.05, 0.6))
    return sent


def screenshot(url: str, out: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1180,1250",
             url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="dashboard.png")
    parser.add_argument("--range", choices=("hour", "session"), default="session")
    args = parser.parse_args()
    sent = send_traffic(args.proxy, args.seconds, args.seed)
    screenshot(f"{args.proxy}/dashboard?range={args.range}", args.out)
    print(f"{sent} requests sent; screenshot in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
