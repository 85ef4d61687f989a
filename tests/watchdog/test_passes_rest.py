"""Watchdog passes whose outcome depends on how RunPod's REST errors are read (issue 10)."""

from __future__ import annotations

import pytest

from podmgr.errors import ApiError

from .conftest import Harness


def test_an_unknown_template_ends_the_pass_naming_it_not_as_a_gone_pod(wd: Harness) -> None:
    """Finding 3/5: "Template not found" read as "pod gone" (exit 5) or "no capacity"."""
    wd.configure(template_id="no-such-template")
    with pytest.raises(ApiError) as caught:
        wd.run()
    assert type(caught.value) is ApiError and caught.value.exit_code == 1
    assert "emplate" in caught.value.message
    assert wd.alive() == []
