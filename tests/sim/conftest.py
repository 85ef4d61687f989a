"""Fixtures of the simulator's tests: an httpx client on its REST API v2."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from podmgr.sim.process import SimProcess


@pytest.fixture
def rest(sim: SimProcess) -> Iterator[httpx.Client]:
    """Plain httpx on `sim.rest_url` (…/v2) with the account's key."""
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30.0) as client:
        yield client
