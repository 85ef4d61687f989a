"""Part 5 of the reliability proofs, proxy side: bad input gets a clear 4xx and harms nothing.

One real proxy process (tests/proxy/proxykit.py) in front of a simulated vLLM pod
(podmgr/sim/process.py, whose traffic counter `received` counts every request it gets).
Requests are written on raw sockets so that the target, the headers and the body go out
byte for byte as in the table (httpx would normalise `..` and fix the headers).

For every row: the status in the table; an OpenAI-shaped error body, except where
uvicorn's HTTP parser refuses the request before the app sees it (then a plain 400 and a
closed connection are what any HTTP server gives, and are accepted); no traceback in the
answer or in the proxy's log; the upstream not called for what the proxy rejects; nothing
added to the cache; and a good request answered afterwards.

| input                                        | status | who decides, why                   |
|----------------------------------------------|--------|------------------------------------|
| malformed JSON, empty body, invalid UTF-8    | 400    | proxy: body is not a JSON object   |
| JSON array / string / number / null          | 400    | proxy: body is not a JSON object   |
| `stream: "yes"`, `stream_options: "x"`       | 400    | proxy: fields the proxy reads      |
| `messages` a string, `max_tokens: "ten"`,    | 400    | forwarded: vLLM judges its fields; |
| `model: 5`                                   |        | its 400 relayed, never cached      |
| chunked body over max_body_bytes             | 413    | proxy: body limit, read in steps   |
| Content-Type text/plain, form-urlencoded     | 415    | proxy: body must be JSON           |
| a 64 KiB header value, 200 headers           | 431    | proxy: headers are sent upstream   |
| non-numeric Content-Length, header w/o colon | 400    | uvicorn/httptools (plain text)     |
| unknown method FROB                          | 400    | uvicorn/httptools (plain text)     |
| DELETE / GET on a completion route           | 405    | proxy: POST only (Allow: POST)     |
| `/v1/../health`, `/v1/%2e%2e/health`, `./`   | 400    | proxy: would reach the pod's       |
|                                              |        | non-/v1 routes with the pod's key  |
| `/v1/chat%2Fcompletions`, `%00` in the path  | 400    | proxy: encoded slash / control     |
| `//v1/models`                                | 404    | proxy's own router (not /v1)       |
| a path of 10 KiB                             | 414    | proxy: target over 8 KiB           |
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from proxy.conftest import vllm_upstream  # noqa: F401 - the fixture, reused
from proxy.proxykit import VLLM_KEY, ProxyProcess
from simkit import SimUpstream

from podmgr.sim.process import wait_until

BODY_LIMIT = 4096
GOOD = {"model": "m", "messages": [{"role": "user", "content": "still serving?"}]}
GOOD_BYTES = json.dumps(GOOD).encode()
CHAT = b"/v1/chat/completions"
SOCKET_TIMEOUT = 10.0


@dataclass
class RawAnswer:
    status: int
    head: str
    body: bytes
    closed: bool

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def send_raw(port: int, request: bytes) -> RawAnswer:
    """Send `request` as it is; read the answer until the server closes (Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        # The server may answer and close before it has taken all of a refused request.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data, closed = b"", False
        deadline = time.monotonic() + SOCKET_TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return RawAnswer(status, head.decode("latin-1"), body, closed)


def post(
    body: bytes,
    path: bytes = CHAT,
    content_type: bytes | None = b"application/json",
    extra: bytes = b"",
) -> bytes:
    ctype = b"Content-Type: " + content_type + b"\r\n" if content_type is not None else b""
    length = b"Content-Length: %d\r\n" % len(body)
    head = b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ctype + length + extra
    return head + b"Connection: close\r\n\r\n" + body


def get(path: bytes, method: bytes = b"GET", extra: bytes = b"") -> bytes:
    start = method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    return start + extra + b"Connection: close\r\n\r\n"


def chat(**fields: object) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


def chunked(total: int, piece: int = 1024) -> bytes:
    chunks = b"".join(b"%x\r\n" % piece + b"a" * piece + b"\r\n" for _ in range(total // piece))
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    return head + b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n"


# (id, request, status, code of the OpenAI error or None for a relayed/plain answer)
REJECTED_BY_PROXY: list[tuple[str, bytes, int, str]] = [
    ("malformed-json", post(b'{"model": "m", "messages": ['), 400, "invalid_json"),
    ("empty-body", post(b""), 400, "invalid_json"),
    ("invalid-utf8", post(b'{"model":"m","messages":[{"role":"user","content":"\xff\xfe"}]}'),
     400, "invalid_json"),
    ("json-array", post(b'[{"model": "m"}]'), 400, "invalid_json"),
    ("json-string", post(b'"hello"'), 400, "invalid_json"),
    ("json-number", post(b"42"), 400, "invalid_json"),
    ("json-null", post(b"null"), 400, "invalid_json"),
    ("stream-string", post(chat(stream="yes")), 400, "invalid_type"),
    ("stream-options-string", post(chat(stream=True, stream_options="x")), 400, "invalid_type"),
    ("cache-controls-list", post(chat(cache=["no-store"])), 400, "invalid_type"),
    ("chunked-over-limit", chunked(BODY_LIMIT * 2), 413, "request_too_large"),
    ("content-type-text", post(GOOD_BYTES, content_type=b"text/plain"),
     415, "unsupported_media_type"),
    ("content-type-form", post(GOOD_BYTES, content_type=b"application/x-www-form-urlencoded"),
     415, "unsupported_media_type"),
    ("header-64k", post(GOOD_BYTES, extra=b"X-Big: " + b"a" * 65536 + b"\r\n"),
     431, "headers_too_large"),
    ("headers-200", post(GOOD_BYTES, extra=b"".join(b"X-H%d: v\r\n" % i for i in range(200))),
     431, "headers_too_large"),
    ("delete-chat", get(CHAT, b"DELETE"), 405, "method_not_allowed"),
    ("get-chat", get(CHAT), 405, "method_not_allowed"),
    ("dot-dot", get(b"/v1/../health"), 400, "invalid_path"),
    ("dot-dot-encoded", get(b"/v1/%2e%2e/health"), 400, "invalid_path"),
    ("dot-dot-models", get(b"/v1/models/../../metrics"), 400, "invalid_path"),
    ("dot-segment", get(b"/v1/./models"), 400, "invalid_path"),
    ("encoded-slash", post(GOOD_BYTES, path=b"/v1/chat%2Fcompletions"), 400, "invalid_path"),
    ("encoded-backslash", get(b"/v1/models%5C..%5Chealth"), 400, "invalid_path"),
    ("encoded-nul", get(b"/v1/models%00"), 400, "invalid_path"),
    ("path-10k", get(b"/v1/" + b"a" * 10240), 414, "uri_too_long"),
    ("double-slash-root", get(b"//v1/models"), 404, "http_404"),
]  # fmt: skip

# Refused by uvicorn's HTTP parser before the app runs: a plain-text 400 and a closed socket.
REJECTED_BY_SERVER: list[tuple[str, bytes]] = [
    ("content-length-not-a-number",
     b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n"
     + GOOD_BYTES),
    ("header-without-colon", get(CHAT, b"POST", b"this is not a header\r\n")),
    ("unknown-method", get(b"/v1/models", b"FROB")),
    ("space-in-target", get(b"/v1/mo dels")),
]  # fmt: skip

# Well-formed JSON objects with fields of the wrong type for vLLM: forwarded, vLLM's 400
# relayed as it is (OpenAI-shaped), and never cached.
FOR_VLLM_TO_JUDGE: list[tuple[str, bytes]] = [
    ("messages-string", chat(messages="hello")),
    ("max-tokens-ten", chat(max_tokens="ten")),
    ("model-number", chat(model=5)),
]


@pytest.fixture(scope="module")
def proxy(
    vllm_upstream: SimUpstream,  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    workdir: Path = tmp_path_factory.mktemp("bad_input_proxy")
    process = ProxyProcess(
        workdir,
        upstream_url=vllm_upstream.url,
        upstream_api_key=VLLM_KEY,
        max_body_bytes=BODY_LIMIT,
    )
    process.start()
    yield process
    process.close()


def cache_entries(proxy: ProxyProcess) -> int:
    """The entry count once no cache write is pending.

    An answer is sent before its entry is written, so the previous test's
    `assert_still_serves` entry may land at any time after it returned (on a loaded machine
    it landed between this test's two reads: 1 == 0). `in_flight` is 0 once it has.
    """

    def settled() -> dict[str, Any] | None:
        cache: dict[str, Any] = proxy.health()["cache"]
        return cache if cache["in_flight"] == 0 else None

    cache = wait_until(settled, "the proxy's pending cache writes (/health cache.in_flight 0)")
    entries: int = cache["entries"]
    return entries


def received(upstream: SimUpstream) -> int:
    return int(upstream.traffic()["received"])


def assert_openai_error(answer: RawAnswer, code: str | None = None) -> dict[str, object]:
    assert "application/json" in answer.head.lower(), answer.head
    error = json.loads(answer.body)["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "type" in error and "code" in error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def assert_still_serves(proxy: ProxyProcess) -> None:
    answer = httpx.post(proxy.url + "/v1/chat/completions", json=GOOD, timeout=10)
    assert answer.status_code == 200 and answer.json()["choices"]


def assert_clean_log(proxy: ProxyProcess) -> None:
    log = proxy.log_text()
    assert "Traceback" not in log and "Exception" not in log, log[-2000:]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [pytest.param(raw, status, code, id=name) for name, raw, status, code in REJECTED_BY_PROXY],
)
def test_proxy_rejects_without_calling_upstream(
    proxy: ProxyProcess,
    vllm_upstream: SimUpstream,  # noqa: F811
    request_bytes: bytes,
    status: int,
    code: str,
) -> None:
    calls, entries = received(vllm_upstream), cache_entries(proxy)
    answer = send_raw(proxy.port, request_bytes)
    print(f"{status} expected, {answer.status} seen: {answer.text[:160]}")
    assert answer.status == status, answer.head + answer.text
    error = assert_openai_error(answer, code)
    assert "Traceback" not in answer.text
    if status == 405:
        assert "\r\nallow: post" in answer.head.lower()
    if code == "invalid_type":
        assert error["param"] in ("stream", "stream_options", "cache")
    assert received(vllm_upstream) == calls, "the upstream was called with a refused request"
    assert cache_entries(proxy) == entries
    assert_still_serves(proxy)
    assert_clean_log(proxy)


@pytest.mark.parametrize(
    "request_bytes", [pytest.param(raw, id=name) for name, raw in REJECTED_BY_SERVER]
)
def test_server_rejects_malformed_http_cleanly(
    proxy: ProxyProcess,
    vllm_upstream: SimUpstream,  # noqa: F811
    request_bytes: bytes,
) -> None:
    calls, entries = received(vllm_upstream), cache_entries(proxy)
    answer = send_raw(proxy.port, request_bytes)
    print(f"400 expected, {answer.status} seen: {answer.text[:160]!r}")
    # uvicorn/httptools answer before the app sees the request: plain text, then close.
    assert answer.status == 400, answer.head
    assert answer.closed
    assert "Traceback" not in answer.text
    assert received(vllm_upstream) == calls
    assert cache_entries(proxy) == entries
    assert_still_serves(proxy)
    assert_clean_log(proxy)


@pytest.mark.parametrize("body", [pytest.param(body, id=name) for name, body in FOR_VLLM_TO_JUDGE])
def test_wrong_field_types_are_vllms_to_judge_and_not_cached(
    proxy: ProxyProcess,
    vllm_upstream: SimUpstream,  # noqa: F811
    body: bytes,
) -> None:
    entries = cache_entries(proxy)
    for attempt in range(2):
        calls = received(vllm_upstream)
        answer = send_raw(proxy.port, post(body))
        print(f"attempt {attempt}: {answer.status} {answer.text[:160]}")
        assert answer.status == 400, answer.head + answer.text
        assert_openai_error(answer)
        assert "x-cache: miss" in answer.head.lower()  # the second try is no hit either
        assert received(vllm_upstream) == calls + 1
    assert cache_entries(proxy) == entries
    assert_still_serves(proxy)
    assert_clean_log(proxy)
