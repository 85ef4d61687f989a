"""Fault specs: the CLI and JSON forms, validation, and how counts and probabilities fire."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from podmgr.sim.faults import FaultBook, build_spec, fault_from_json, parse_fault


@pytest.mark.parametrize(
    ("text", "probability", "count", "params"),
    [
        pytest.param("api_something_went_wrong", None, None, {}, id="always"),
        pytest.param("api_error:0.2", 0.2, None, {"status": 502}, id="probability"),
        pytest.param("api_error:x3,status=429", None, 3, {"status": 429}, id="count+param"),
        pytest.param(
            "capacity:x1,gpu_type_ids=NVIDIA GeForce RTX 4090|NVIDIA L40S",
            None,
            1,
            {"gpu_type_ids": ["NVIDIA GeForce RTX 4090", "NVIDIA L40S"]},
            id="list-param",
        ),
        pytest.param("upstream_stall:x2,seconds=1.5", None, 2, {"seconds": 1.5}, id="seconds"),
        pytest.param("upstream_slow", None, None, {"seconds": 0.2}, id="slow-default"),
        pytest.param("list_error", None, None, {}, id="list-error"),
        pytest.param("list_error:x2,status=503", None, 2, {"status": 503}, id="list-error-page"),
        pytest.param("transient_status:x1", None, 1, {"seconds": 2.0}, id="transient-default"),
        pytest.param(
            '{"fault": "upstream_error", "count": 2, "status": 503}',
            None,
            2,
            {"status": 503},
            id="json",
        ),
    ],
)
def test_cli_forms_parse(
    text: str, probability: float | None, count: int | None, params: dict[str, object]
) -> None:
    spec = parse_fault(text)
    assert (spec.probability, spec.count, dict(spec.params)) == (probability, count, params)


@pytest.mark.parametrize(
    "text",
    [
        "no_such_fault",
        "api_error:1.5",
        "api_error:x0",
        "api_error:xx",
        "api_error:x1,status=404",
        "api_error,colour=red",
        "api_slow,seconds=-1",
        "capacity,gpu_type_ids",
        "{not json",
        '{"fault": "api_error", "count": 1, "probability": 0.5}',
    ],
)
def test_malformed_faults_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fault(text)


def test_json_form_accepts_nested_params() -> None:
    spec = fault_from_json({"fault": "vllm_die", "count": 1, "params": {"pod_id": "abc"}})
    assert spec.params == {"pod_id": "abc"}


def test_count_fault_fires_exactly_n_matching_times() -> None:
    book = FaultBook(random.Random(1))
    fault = book.add(build_spec("capacity", count=2, params={"gpu_type_ids": ["A"]}))
    only_a = lambda params: "A" in params["gpu_type_ids"]  # noqa: E731
    only_b = lambda params: "B" in params["gpu_type_ids"]  # noqa: E731
    assert book.draw("capacity", only_b) is None
    assert book.draw("capacity", only_a) is fault
    assert book.draw("capacity", only_a) is fault
    assert book.draw("capacity", only_a) is None
    assert fault.to_json()["remaining"] == 0
    assert fault.to_json()["fired"] == 2


def test_probability_fault_fires_about_that_often_and_repeatably() -> None:
    def firings(seed: int) -> list[bool]:
        book = FaultBook(random.Random(seed))
        book.add(build_spec("api_error", probability=0.25))
        return [book.draw("api_error") is not None for _ in range(2000)]

    first = firings(7)
    assert 0.2 < sum(first) / len(first) < 0.3
    assert firings(7) == first


def test_cleared_book_fires_nothing() -> None:
    book = FaultBook(random.Random(0))
    book.add(build_spec("api_something_went_wrong"))
    book.clear()
    assert book.draw("api_something_went_wrong") is None
    assert book.to_json() == []


def test_bad_fault_flag_exits_2_naming_the_flag() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "podmgr",
            "sim",
            "--port",
            "0",
            "--fault",
            "api_error:x1,status=404",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--fault" in result.stderr
    assert "status" in result.stderr
    assert result.stdout == ""
