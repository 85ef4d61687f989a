"""Every cache rule, against a real proxy process and a simulated pod (which counts calls)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from simkit import SimUpstream

from podmgr.cli import main
from podmgr.sim.process import wait_until

from .proxykit import VLLM_KEY, ProxyProcess, get_json


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": f"task {uuid.uuid4().hex}"}],
        "max_tokens": 4,
        **extra,
    }


def _post(
    proxy: ProxyProcess, body: dict[str, Any], route: str = "chat/completions", **headers: str
) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/{route}", json=body, headers=headers, timeout=30)


def _calls(upstream: SimUpstream) -> int:
    """Completions and embeddings the pod's vLLM ran (cache hits run none)."""
    return int(upstream.traffic()["model_calls"])


def _last_request(upstream: SimUpstream, path: str) -> dict[str, Any]:
    """The latest request for `path` that reached the pod."""
    matching = [r for r in upstream.traffic()["recent"] if r["path"] == path]
    assert matching, f"no request for {path} reached the pod"
    return dict(matching[-1])


@pytest.fixture(scope="module")
def shared_proxy(
    vllm_upstream: SimUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """One proxy with the default cache settings, shared by the tests that need no other."""
    workdir = tmp_path_factory.mktemp("cache_proxy")
    proxy = ProxyProcess(workdir, upstream_url=vllm_upstream.url + "/v1", upstream_api_key=VLLM_KEY)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
def proxy(shared_proxy: ProxyProcess, upstream: SimUpstream) -> ProxyProcess:
    return shared_proxy


def _entry_files(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.glob("entries/*/*") if not p.name.startswith(".")]


def _settled_files(proxy: ProxyProcess, cache_dir: Path | None = None) -> tuple[int, int]:
    """(entries, bytes) on disk once the proxy's last store is done: answers are sent before
    their entry is written, so wait until no write is pending (`in_flight` 0) and disk and
    index agree."""
    directory = cache_dir or proxy.cache_path

    def settled() -> tuple[int, int] | None:
        cache = get_json(proxy.url + "/health")["cache"]
        try:
            files = _entry_files(directory)
            seen = (len(files), sum(p.stat().st_size for p in files))
        except FileNotFoundError:  # an entry replaced or evicted while we looked
            return None
        agree = cache["in_flight"] == 0 and seen == (cache["entries"], cache["bytes"])
        return seen if agree else None

    return wait_until(settled, "cache writes to finish and disk to match /health's cache")


def _settled_at(proxy: ProxyProcess) -> float:
    """time.time() once no cache write of `proxy` is pending (entries stored by then)."""
    wait_until(
        lambda: get_json(proxy.url + "/health")["cache"]["in_flight"] == 0,
        "the proxy's pending cache writes (/health cache.in_flight 0)",
    )
    return time.time()


def _sse_payloads(text: str) -> list[Any]:
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    return [event if event == "[DONE]" else json.loads(event) for event in events]


def test_health_counts_an_upstream_call_until_its_entry_is_stored(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    """/health's cache.in_flight is the hook tests wait on before they read `entries`."""
    upstream.set_fault("upstream_slow", seconds=0.2)  # 20 tokens: a 4 s answer
    _settled_at(proxy)  # an earlier test's answer may still be on its way into the cache
    entries = get_json(proxy.url + "/health")["cache"]["entries"]
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(_post(proxy, _body(max_tokens=20))))
    request.start()
    wait_until(
        lambda: get_json(proxy.url + "/health")["cache"]["in_flight"] == 1,
        "/health to count the slow upstream call in cache.in_flight",
    )
    request.join()
    upstream.clear_faults()
    _settled_at(proxy)  # in_flight back to 0: the entry is stored by now
    assert answers[0].headers["x-cache"] == "MISS"
    assert get_json(proxy.url + "/health")["cache"]["entries"] == entries + 1


def test_miss_then_hit_same_bytes(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    body = _body()
    first = _post(proxy, body)
    second = _post(proxy, body)
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert first.headers["x-cache-key"] == second.headers["x-cache-key"]
    assert first.content == second.content


def test_stream_and_json_share_one_entry(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    body = _body()
    before = _calls(upstream)
    whole = _post(proxy, body)
    streamed = _post(proxy, {**body, "stream": True})
    with_usage = _post(proxy, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert _calls(upstream) == before + 1
    assert whole.headers["x-cache"] == "MISS"
    assert streamed.headers["x-cache"] == with_usage.headers["x-cache"] == "HIT"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    plain = _sse_payloads(streamed.text)
    usage = _sse_payloads(with_usage.text)
    assert plain[-1] == "[DONE]" and usage[-1] == "[DONE]"
    assert not any(isinstance(p, dict) and p.get("usage") for p in plain)
    assert usage[-2]["choices"] == [] and usage[-2]["usage"]["completion_tokens"] == 4
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in plain[:-1])
    assert text == whole.json()["choices"][0]["message"]["content"]
    assert whole.json()["usage"]["completion_tokens"] == 4


def test_first_stream_without_usage_still_serves_usage_later(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    body = _body(stream=True)
    first = _post(proxy, body)
    assert not any(isinstance(p, dict) and p.get("usage") for p in _sse_payloads(first.text))
    later = _post(proxy, {**body, "stream_options": {"include_usage": True}})
    assert later.headers["x-cache"] == "HIT"
    usage = _sse_payloads(later.text)[-2]["usage"]
    assert usage["completion_tokens"] == 4 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_key_ignores_user_stream_and_client_headers(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    body = _body()
    first = _post(proxy, {**body, "user": "alice"}, **{"x-stainless-os": "Linux"})
    second = _post(
        proxy, {**body, "user": "bob"}, **{"x-stainless-os": "MacOS", "user-agent": "other"}
    )
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["x-cache-key"] == second.headers["x-cache-key"]
    different = _post(proxy, {**body, "max_tokens": 5})
    assert different.headers["x-cache"] == "MISS"


def test_cache_control_headers(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    body = _body()
    assert _post(proxy, body, **{"cache-control": "no-store"}).headers["x-cache"] == "BYPASS"
    assert _post(proxy, body).headers["x-cache"] == "MISS"  # no-store stored nothing
    before = _calls(upstream)
    fresh = _post(proxy, body, **{"cache-control": "no-cache"})
    assert fresh.headers["x-cache"] == "BYPASS" and _calls(upstream) == before + 1
    assert _post(proxy, body).headers["x-cache"] == "HIT"


def test_litellm_body_controls(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    body = _body()
    assert _post(proxy, {**body, "cache": {"no-store": True}}).headers["x-cache"] == "BYPASS"
    assert _post(proxy, body).headers["x-cache"] == "MISS"
    assert _post(proxy, {**body, "cache": {"no-cache": True}}).headers["x-cache"] == "BYPASS"
    # The `cache` field never reaches the model server, and is not part of the key.
    assert _post(proxy, {**body, "cache": {"no-cache": False}}).headers["x-cache"] == "HIT"
    # The TTL is judged on the proxy's clock (time.time(), the same as ours) from what we
    # know for sure: the entry expires after `sent + ttl` and by `stored + ttl`. A loaded
    # machine may stall us past the TTL before the second request: then HIT is not owed.
    ttl, ttl_body = 2, _body()
    sent = time.time()
    assert _post(proxy, {**ttl_body, "cache": {"ttl": ttl}}).headers["x-cache"] == "MISS"
    stored = _settled_at(proxy)
    answer = _post(proxy, ttl_body).headers["x-cache"]
    if time.time() < sent + ttl:
        assert answer == "HIT"
    time.sleep(max(0.0, stored + ttl - time.time()) + 0.01)
    assert _post(proxy, ttl_body).headers["x-cache"] == "MISS"


def test_cache_field_is_removed_before_forwarding(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    answer = _post(
        proxy, {"input": "x", "cache": {"no-store": True}}, route="embeddings", authorization="x"
    )
    assert answer.status_code == 200
    forwarded = _last_request(upstream, "/v1/embeddings")
    assert json.loads(forwarded["body"]) == {"input": "x"}  # no `cache` field upstream
    assert forwarded["authorized"] is True  # the upstream key, not the client's "x"


def test_deterministic_mode(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, cache_mode="deterministic"
    )
    sampled = _body(temperature=0.7)
    assert _post(proxy, sampled).headers["x-cache"] == "BYPASS"
    assert _post(proxy, sampled).headers["x-cache"] == "BYPASS"
    greedy = _body(temperature=0)
    seeded = _body(seed=7)
    for body in (greedy, seeded):
        assert _post(proxy, body).headers["x-cache"] == "MISS"
        assert _post(proxy, body).headers["x-cache"] == "HIT"


def test_off_mode(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY, cache_mode="off")
    body = _body(temperature=0)
    assert _post(proxy, body).headers["x-cache"] == "BYPASS"
    assert _post(proxy, body).headers["x-cache"] == "BYPASS"
    _settled_at(proxy)  # a wrong store would land after the answer
    assert get_json(proxy.url + "/health")["cache"]["entries"] == 0


def test_concurrent_identical_misses_are_coalesced(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    # 4 tokens 0.5 s apart: the first miss stays in flight while the six clients arrive,
    # even on a busy machine.
    upstream.set_fault("upstream_slow", seconds=0.5)
    body = _body()
    before = _calls(upstream)
    results: list[httpx.Response] = []

    def call(stream: bool) -> None:
        results.append(_post(proxy, {**body, "stream": stream}))

    threads = [threading.Thread(target=call, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _calls(upstream) == before + 1
    assert all(r.status_code == 200 for r in results)
    assert {r.headers["x-cache"] for r in results} <= {"MISS", "HIT"}
    metrics = httpx.get(proxy.url + "/metrics").text
    assert "podmgr_proxy_coalesced_requests_total" in metrics


def _hang_up_once_the_pod_works_on_it(
    proxy: ProxyProcess,
    upstream: SimUpstream,
    path: str,
    body: bytes,
    content_type: str,
    marker: str,
) -> None:
    """POST `body` on a raw socket, wait until the pod is working on it, then hang up.

    Waiting for the pod (not for a client timeout) makes sure the request was forwarded
    before the client leaves, however slow the machine is. The pod's record of the request
    is the one whose body holds `marker` (the proxy may re-encode a JSON body).
    """
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        wait_until(
            lambda: any(
                r["outcome"] == "pending" and marker in r["body"]
                for r in upstream.traffic()["recent"]
            ),
            f"the pod to start working on {path}",
        )


def test_cancelled_stream_is_not_stored_and_cancels_upstream(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    upstream.set_fault("upstream_slow", seconds=0.5)  # 20 tokens: a 10 s stream
    body = _body(stream=True, max_tokens=20)
    cancelled_before = upstream.traffic()["cancelled"]
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=30) as r:
        for _ in r.iter_raw():
            break  # first event only, then hang up
    assert upstream.wait_cancelled(cancelled_before) == cancelled_before + 1
    upstream.clear_faults()
    assert _post(proxy, body).headers["x-cache"] == "MISS"


def _abandon_a_slow_json_answer(proxy: ProxyProcess, upstream: SimUpstream) -> dict[str, Any]:
    """Ask for a 20 s answer, hang up once the pod works on it, and see the pod stop; the
    body asked (the fault is cleared again)."""
    upstream.set_fault("upstream_slow", seconds=1.0)  # 20 tokens: a 20 s answer
    body = _body(max_tokens=20)
    cancelled_before = upstream.traffic()["cancelled"]
    raw, marker = json.dumps(body).encode(), body["messages"][0]["content"]
    _hang_up_once_the_pod_works_on_it(
        proxy, upstream, "/v1/chat/completions", raw, "application/json", marker
    )
    assert upstream.wait_cancelled(cancelled_before) == cancelled_before + 1
    upstream.clear_faults()
    return body


def test_abandoned_json_request_cancels_upstream(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    """A client that gives up on a non-streaming answer stops the upstream work too."""
    body = _abandon_a_slow_json_answer(proxy, upstream)
    assert _post(proxy, body).headers["x-cache"] == "MISS"


def test_abandoned_request_with_the_cache_off_cancels_upstream(
    make_proxy: Any, upstream: SimUpstream
) -> None:
    """With the cache off, a JSON answer's upstream call is made alone in the client's own
    task (forward/alone.py: no flight); the client's leaving still stops it, and the next
    request works."""
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY, cache_mode="off")
    answer = _post(proxy, _abandon_a_slow_json_answer(proxy, upstream))
    assert answer.status_code == 200 and answer.headers["x-cache"] == "BYPASS"


def test_abandoned_pass_through_request_cancels_upstream(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    """The same for a route that is not cached and is forwarded as it is (body included)."""
    upstream.set_fault("upstream_stall", seconds=60.0, path_prefix="/v1/audio/")
    path = "/v1/audio/transcriptions"
    audio = f"audio {uuid.uuid4().hex}".encode()
    cancelled_before = upstream.traffic()["cancelled"]
    _hang_up_once_the_pod_works_on_it(proxy, upstream, path, audio, "audio/wav", audio.decode())
    assert upstream.wait_cancelled(cancelled_before) == cancelled_before + 1
    abandoned = _last_request(upstream, path)
    assert abandoned["method"] == "POST" and abandoned["body"] == audio.decode()
    assert abandoned["outcome"] == "cancelled"
    upstream.clear_faults()
    # The simulated vLLM serves a text model: no transcription route, so it answers 404.
    answer = httpx.post(proxy.url + path, content=audio, timeout=30)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "upstream_404"
    again = _last_request(upstream, path)
    assert again["outcome"] == "answered" and again["body"] == audio.decode()


def test_expect_100_continue_from_a_client(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 KiB; that is ours to answer."""
    body = _body(messages=[{"role": "user", "content": "x" * 2048}])
    answer = httpx.post(
        f"{proxy.url}/v1/chat/completions", json=body, headers={"Expect": "100-continue"}
    )
    assert answer.status_code == 200 and answer.json()["choices"]


def test_cut_stream_and_errors_are_not_stored(proxy: ProxyProcess, upstream: SimUpstream) -> None:
    body = _body(stream=True, max_tokens=6)
    upstream.set_fault("upstream_drop")  # the connection is cut after two events
    cut = _post(proxy, body)
    assert cut.status_code == 200 and '"error"' in cut.text
    upstream.clear_faults()
    upstream.set_fault("upstream_error", status=500)
    failed = _post(proxy, body)
    assert failed.status_code == 502 and failed.json()["error"]["type"] == "upstream_error"
    upstream.clear_faults()
    assert _post(proxy, body).headers["x-cache"] == "MISS"
    assert _post(proxy, body).headers["x-cache"] == "HIT"


def test_lru_bounds_are_exact(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY, max_cache_size=3)
    bodies = [_body() for _ in range(4)]
    for body in bodies[:3]:
        assert _post(proxy, body).headers["x-cache"] == "MISS"
    assert _post(proxy, bodies[0]).headers["x-cache"] == "HIT"  # 0 is now the most recent
    _post(proxy, bodies[3])  # evicts 1, the least recently used
    assert _settled_files(proxy)[0] == 3
    health = get_json(proxy.url + "/health")["cache"]
    assert health["entries"] == 3
    assert _post(proxy, bodies[0]).headers["x-cache"] == "HIT"
    assert _post(proxy, bodies[2]).headers["x-cache"] == "HIT"
    assert _post(proxy, bodies[1]).headers["x-cache"] == "MISS"
    assert _settled_files(proxy)[0] == 3
    assert "podmgr_proxy_cache_evictions_total 2.0" in httpx.get(proxy.url + "/metrics").text


def test_byte_bound_is_exact(make_proxy: Any, upstream: SimUpstream) -> None:
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, max_cache_bytes=2000
    )  # a local upstream: JSON-only entries, about 450 bytes each
    for _ in range(8):
        _post(proxy, _body(max_tokens=8))
    entries, on_disk = _settled_files(proxy)
    assert 0 < on_disk <= 2000 and 2 <= entries < 8


def test_persists_across_restart_and_damaged_files_are_misses(
    make_proxy: Any, upstream: SimUpstream, tmp_path: Path
) -> None:
    fields = {"upstream_url": upstream.url, "upstream_api_key": VLLM_KEY}
    workdir = tmp_path / "persist"
    proxy = make_proxy(workdir=workdir, **fields)
    kept, truncated, deleted, garbage = (_body() for _ in range(4))
    keys = {}
    for name, body in (("k", kept), ("t", truncated), ("d", deleted), ("g", garbage)):
        keys[name] = _post(proxy, body).headers["x-cache-key"]
    assert proxy.stop() == 0
    entry = proxy.cache_path / "entries"
    path = {name: entry / key[:2] / key for name, key in keys.items()}
    path["t"].write_bytes(path["t"].read_bytes()[:40])
    path["d"].unlink()
    path["g"].write_bytes(b"not a cache entry at all")
    proxy.start()
    assert _post(proxy, kept).headers["x-cache"] == "HIT"
    for body in (truncated, deleted, garbage):
        response = _post(proxy, body)
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
        assert _post(proxy, body).headers["x-cache"] == "HIT"


def test_two_processes_share_the_directory(
    make_proxy: Any, upstream: SimUpstream, tmp_path: Path
) -> None:
    fields = {"upstream_url": upstream.url, "upstream_api_key": VLLM_KEY}
    shared = str(tmp_path / "shared-cache")
    first = make_proxy(cache_dir=shared, max_cache_size=5, **fields)
    second = make_proxy(cache_dir=shared, max_cache_size=5, **fields)
    body = _body()
    assert _post(first, body).headers["x-cache"] == "MISS"
    wait_until(
        lambda: _post(second, body).headers["x-cache"] == "HIT",
        "the second process to serve the first one's entry",
        interval=0.2,
    )
    errors: list[BaseException] = []

    def hammer(proxy: ProxyProcess) -> None:
        try:
            for _ in range(6):
                assert _post(proxy, _body()).status_code == 200
        except BaseException as error:  # re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(p,)) for p in (first, second, first)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    wait_until(
        lambda: len(_entry_files(Path(shared))) == 5,
        "the shared bound of 5 entries on disk",
        interval=0.05,
    )


def test_cache_cli_stats_and_clear(
    make_proxy: Any, upstream: SimUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = make_proxy(upstream_url=upstream.url, upstream_api_key=VLLM_KEY)
    body = _body()
    _post(proxy, body)
    _post(proxy, _body())
    assert _settled_files(proxy)[0] == 2
    config = ["--config", str(proxy.config_path), "--json"]

    def cli(action: str) -> Any:
        assert main(["cache", action, *config]) == 0
        return json.loads(capsys.readouterr().out)

    assert cli("stats")["entries"] == 2
    assert cli("clear")["removed_entries"] == 2
    assert cli("stats")["entries"] == 0
    wait_until(
        lambda: _post(proxy, body).headers["x-cache"] != "HIT",
        "the running proxy to stop serving a cleared entry",
        interval=0.2,
    )


def test_prewarm(make_proxy: Any, upstream: SimUpstream, tmp_path: Path) -> None:
    bodies = [_body(), _body()]
    lines = [json.dumps({"path": "/v1/chat/completions", "body": b}) for b in bodies]
    prewarm = tmp_path / "prewarm.jsonl"
    prewarm.write_text("\n".join([*lines, "not json", ""]))
    proxy = make_proxy(
        upstream_url=upstream.url, upstream_api_key=VLLM_KEY, prewarm_cache=str(prewarm)
    )
    wait_until(
        lambda: get_json(proxy.url + "/health")["cache"]["entries"] >= 2,
        "prewarm to fill the cache with 2 entries",
        interval=0.1,
    )
    for body in bodies:
        assert _post(proxy, body).headers["x-cache"] == "HIT"
        streamed = _post(proxy, {**body, "stream": True})
        assert streamed.headers["x-cache"] == "HIT" and streamed.text.endswith("data: [DONE]\n\n")


def test_upstream_key_injected_and_client_key_dropped(
    proxy: ProxyProcess, upstream: SimUpstream
) -> None:
    request = urllib.request.Request(
        f"{proxy.url}/v1//models?x=1", headers={"Authorization": "Bearer client-key"}
    )
    with contextlib.suppress(urllib.error.HTTPError):  # the pod's answer does not matter
        urllib.request.urlopen(request, timeout=30).close()
    seen = [r for r in upstream.traffic()["recent"] if r["query"] == "x=1"]
    assert seen, "the pass-through request never reached the pod"
    assert seen[-1]["authorized"] is True  # the upstream key replaced "client-key"
    assert seen[-1]["method"] == "GET"
