"""Generate the shipped synthetic work-week trace of editor traffic (traces/workweek.csv).

    python -m podmgr.whatif.workweek --seed 1 > traces/workweek.csv

One person's editor (chat and edits through Continue/Cline-style extensions) against one
model, Monday 2026-11-23 to Sunday 2026-11-29, times in UTC:
- working hours 09:00-12:00 and 13:00-18:00 Monday to Friday (a lunch gap at 12-13),
  nothing at night or at the weekend;
- in working hours, bursts of 2-12 requests a few seconds apart (an agent's or a chat's
  turns), bursts ~4 minutes apart on average (exponential), and now and then a pause of
  20-75 minutes (a meeting, a review) that an idle timeout may end a pod in;
- prompt tokens 400-6000 (editor context), completion tokens 20-600.
The same seed gives the same file byte for byte (a test checks the shipped one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["generate", "main"]

MONDAY = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
WORK_PERIODS = ((9, 12), (13, 18))
MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct"


def _period_requests(rng: random.Random, start: float, end: float) -> Iterator[float]:
    at = start + rng.uniform(0, 600)
    while at < end:
        for _ in range(rng.randint(2, 12)):
            if at >= end:
                return
            yield at
            at += rng.uniform(2, 25)
        if rng.random() < 0.06:
            at += rng.uniform(20, 75) * 60  # a meeting
        else:
            at += rng.expovariate(1 / 240)


def generate(seed: int, out: TextIO) -> int:
    """Write the trace as CSV; returns the number of requests."""
    rng = random.Random(seed)
    out.write("timestamp,model,prompt_tokens,completion_tokens\n")
    count = 0
    for day in range(5):
        midnight = MONDAY + dt.timedelta(days=day)
        for begin, finish in WORK_PERIODS:
            start = (midnight + dt.timedelta(hours=begin)).timestamp()
            end = (midnight + dt.timedelta(hours=finish)).timestamp()
            for at in _period_requests(rng, start, end):
                stamp = dt.datetime.fromtimestamp(round(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                prompt, completion = rng.randint(400, 6000), rng.randint(20, 600)
                out.write(f"{stamp},{MODEL},{prompt},{completion}\n")
                count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    generate(args.seed, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
