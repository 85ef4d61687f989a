"""The real `openai` SDK against a simulated pod's URL: vLLM's answers and the edge's faults."""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from podmgr.sim.process import SimProcess, wait_until

from .v2kit import read_events

POD_KEY = "pod-vllm-key-not-real"
MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a haiku about caches."}
]


def client(sim: SimProcess, pod_id: str, key: str = POD_KEY, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=sim.pod_url(pod_id) + "/v1", api_key=key, max_retries=retries, timeout=10
    )


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimProcess]:
    """One simulator for this module's tests; each test gets its own pod and no faults."""
    with SimProcess() as process:
        yield process


@pytest.fixture
def sim(shared_sim: SimProcess) -> Iterator[SimProcess]:
    yield shared_sim
    shared_sim.clear_faults()


@pytest.fixture
def pod_id(sim: SimProcess) -> str:
    pod = sim.create_pod(model=MODEL, env={"VLLM_API_KEY": POD_KEY})
    sim.wait_serving(pod)
    return pod


def test_models_and_streamed_chat_with_the_pod_key(sim: SimProcess, pod_id: str) -> None:
    with client(sim, pod_id) as api:
        models = api.models.list()
        assert [m.id for m in models.data] == [MODEL]
        assert (models.data[0].model_extra or {})["max_model_len"] == 4096
        stream = api.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=10,
        )
        chunks = list(stream)
        whole = api.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    assert whole.choices[0].finish_reason == "length"


def test_same_request_gives_identical_bytes(sim: SimProcess, pod_id: str) -> None:
    url = sim.pod_url(pod_id) + "/v1/completions"
    headers = {"Authorization": f"Bearer {POD_KEY}"}
    body = {"model": MODEL, "prompt": "def fib(n):", "max_tokens": 16, "stop": ["\n"]}
    first = httpx.post(url, json=body, headers=headers)
    second = httpx.post(url, json=body, headers=headers)
    assert first.status_code == 200
    assert first.content == second.content
    assert first.json()["choices"][0]["text"]


def test_v1_needs_the_key_but_health_does_not(sim: SimProcess, pod_id: str) -> None:
    with client(sim, pod_id, key="wrong-key") as api, pytest.raises(openai.AuthenticationError):
        api.models.list()
    assert httpx.get(sim.pod_url(pod_id) + "/health").status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": [], "n": 1}, "messages"),
        ({"model": 5, "messages": MESSAGES}, "model"),  # a type error, not an unknown model
    ],
)
def test_bad_input_is_an_openai_400(
    sim: SimProcess, pod_id: str, body: dict[str, object], param: str
) -> None:
    response = httpx.post(
        sim.pod_url(pod_id) + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {POD_KEY}"},
    )
    assert response.status_code == 400
    error = response.json()  # vLLM v0.8.5's ErrorResponse is flat (protocol.py)
    assert set(error) == {"object", "message", "type", "param", "code"}
    assert (error["object"], error["param"], error["code"]) == ("error", param, 400)


def test_invalid_json_and_wrong_model(sim: SimProcess, pod_id: str) -> None:
    url = sim.pod_url(pod_id) + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {POD_KEY}", "Content-Type": "application/json"}
    broken = httpx.post(url, content=b"{not json", headers=headers)
    assert broken.status_code == 400
    assert broken.json()["type"] == "BadRequestError"
    with client(sim, pod_id) as api, pytest.raises(openai.NotFoundError) as caught:
        api.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.body == {
        "object": "error",
        "message": "The model `gpt-4o` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_two_pods_each_serve_only_their_own_model_and_log_their_own_requests(
    sim: SimProcess,
) -> None:
    """Issue 23: a pod per model. Each simulated vLLM lists and answers its own model only,
    answers the other's as vLLM does (404 NotFoundError, vLLM's serving_engine.py
    `_check_model`), and each pod's request log holds exactly what reached it."""
    big, small = "sim/big-32b", "sim/small-1.5b"
    pods = {}
    for model in (big, small):
        pods[model] = sim.create_pod(model=model, env={"VLLM_API_KEY": POD_KEY})
    for pod in pods.values():
        sim.wait_serving(pod)
    for model, pod in pods.items():
        other = small if model == big else big
        with client(sim, pod) as api:
            assert [m.id for m in api.models.list().data] == [model]
            answer = api.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"to {model}"}], max_tokens=2
            )
            assert answer.model == model
            with pytest.raises(openai.NotFoundError) as caught:
                api.chat.completions.create(model=other, messages=MESSAGES, max_tokens=2)
        assert caught.value.body == {
            "object": "error",
            "message": f"The model `{other}` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    for model, pod in pods.items():
        chats = [
            record
            for record in sim.pod_traffic(pod)["recent"]
            if record["path"] == "/v1/chat/completions"
        ]
        assert [(r["status"], r["outcome"]) for r in chats] == [
            (200, "answered"),
            (404, "answered"),
        ]
        assert f"to {model}" in chats[0]["body"]
        assert all("to sim/" not in r["body"] for r in chats[1:])


def test_a_request_past_the_context_length_is_vllms_flat_400(sim: SimProcess, pod_id: str) -> None:
    with client(sim, pod_id) as api, pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100_000)
    body = caught.value.body
    assert isinstance(body, dict) and body["object"] == "error" and body["code"] == 400
    assert str(body["message"]).startswith("This model's maximum context length is 4096 tokens.")
    assert str(body["message"]).endswith("Please reduce the length of the messages or completion.")


def test_the_routes_vllm_does_not_guard(sim: SimProcess, pod_id: str) -> None:
    """vLLM v0.8.5 checks its key on /v1 only: these answer anyone with the pod URL."""
    url = sim.pod_url(pod_id)
    tokens = httpx.post(url + "/tokenize", json={"model": MODEL, "prompt": "def f(): pass"})
    assert tokens.status_code == 200
    assert tokens.json()["count"] == len(tokens.json()["tokens"]) == 6  # def f ( ) : pass
    assert tokens.json()["max_model_len"] == 4096
    text = httpx.post(url + "/detokenize", json={"model": MODEL, "tokens": [1, 2]})
    assert text.status_code == 200 and isinstance(text.json()["prompt"], str)
    chat = httpx.post(url + "/invocations", json={"messages": MESSAGES, "max_tokens": 3})
    assert chat.status_code == 200 and chat.json()["object"] == "chat.completion"
    completion = httpx.post(url + "/invocations", json={"prompt": "x", "max_tokens": 3})
    assert completion.json()["object"] == "text_completion"
    for path, api in (("/score", "Score"), ("/pooling", "Pooling"), ("/rerank", "Rerank (Score)")):
        answer = httpx.post(url + path, json={"model": MODEL})
        assert answer.status_code == 400
        assert answer.json()["message"] == f"The model does not support {api} API"
    assert httpx.get(url + "/version").json() == {"version": "0.8.5"}
    metrics = httpx.get(url + "/metrics")
    assert metrics.status_code == 200 and "vllm:request_success_total" in metrics.text


def test_embeddings(sim: SimProcess, pod_id: str) -> None:
    with client(sim, pod_id) as api:
        result = api.embeddings.create(model=MODEL, input=["a", "b"])
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[0].embedding != result.data[1].embedding


def test_502_until_the_model_is_loaded() -> None:
    with SimProcess(pull_seconds=0.05, load_seconds=600) as sim:  # loading all test long
        pod = sim.create_pod()
        with client(sim, pod) as api, pytest.raises(openai.InternalServerError) as caught:
            api.models.list()
        assert caught.value.status_code == 502
        assert httpx.get(sim.pod_url(pod) + "/health").status_code == 502


def test_524_when_the_answer_starts_after_the_edge_timeout() -> None:
    # The JSON answer waits for all 8 tokens, at least 4 s of sleeping: past the 2 s edge
    # timeout whatever the load. The stream's first bytes must beat it: 2 s, not the former
    # 0.2 s, so that a loaded machine's stall cannot turn the stream into a 524 too.
    with SimProcess(edge_timeout_seconds=2.0, token_delay=0.5) as sim:
        pod = sim.create_pod()
        sim.wait_serving(pod)
        url = sim.pod_url(pod) + "/v1/chat/completions"
        body = {"messages": MESSAGES, "max_tokens": 8}
        slow = httpx.post(url, json=body, timeout=10)
        assert slow.status_code == 524
        assert "text/html" in slow.headers["content-type"]
        with httpx.stream("POST", url, json={**body, "stream": True}, timeout=10) as streamed:
            lines = [line for line in streamed.iter_lines() if line]
        assert streamed.status_code == 200
        assert lines[-1] == "data: [DONE]"


def test_upstream_stall_past_the_edge_timeout_is_524() -> None:
    # The stall (10 s) is far past the edge timeout; the next answer must come within the
    # edge timeout, which is 2 s so that a loaded machine cannot push it past.
    with SimProcess(edge_timeout_seconds=2.0) as sim:
        pod = sim.create_pod()
        sim.wait_serving(pod)
        sim.set_fault("upstream_stall", count=1, seconds=10)
        url = sim.pod_url(pod) + "/v1/models"
        assert httpx.get(url, timeout=10).status_code == 524
        assert httpx.get(url, timeout=10).status_code == 200


def test_a_dead_v1_engine_keeps_health_200_until_a_request_needs_it(
    sim: SimProcess, pod_id: str
) -> None:
    """vLLM v0.8.5's V1 engine: /health stays 200 after the engine died; the next request
    that needs it gets a 500 and the server exits; RunPod restarts the container."""
    sim.set_fault("vllm_die", count=1, pod_id=pod_id)
    sim.graphql("query { myself { id } }")  # faults strike pods on API calls
    url = sim.pod_url(pod_id)
    assert httpx.get(url + "/health").status_code == 200
    with client(sim, pod_id) as api:
        assert [m.id for m in api.models.list().data] == [MODEL]  # no engine needed
        with pytest.raises(openai.InternalServerError) as caught:
            api.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    assert caught.value.status_code == 500
    assert httpx.get(url + "/health").status_code == 502  # the container exited
    sim.wait_serving(pod_id)  # RunPod restarted it; a fresh engine serves
    lines = _log_lines(sim, pod_id, until="INFO:     Application startup complete.", count=2)
    died = lines.index(
        "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack "
        "trace (above) for the root cause."
    )
    exited = lines.index("Container exited with code 0", died)
    assert lines[exited + 1 : exited + 3] == ["Restarting container", "Starting container"]
    assert "INFO:     Application shutdown complete." in lines[died:exited]
    assert lines[-1] == "INFO:     Application startup complete."


def _log_lines(sim: SimProcess, pod_id: str, until: str, count: int) -> list[str]:
    """The pod's log lines (REST v2 SSE) once `until` is among them `count` times."""
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    with httpx.Client(base_url=sim.rest_url, headers=headers, timeout=30) as rest:
        events, _ = read_events(
            rest,
            f"/pods/{pod_id}/logs",
            params={"tail": 5000},
            until=lambda events: [e["line"] for e in events].count(until) >= count,
            timeout=60,
        )
    return [str(e["line"]) for e in events]


def test_kill_vllm_action(sim: SimProcess, pod_id: str) -> None:
    sim.kill_vllm(pod_id)
    assert httpx.get(sim.pod_url(pod_id) + "/health").status_code == 503


def test_upstream_error_is_openai_shaped(sim: SimProcess, pod_id: str) -> None:
    sim.set_fault("upstream_error", count=1)
    with client(sim, pod_id) as api, pytest.raises(openai.InternalServerError) as caught:
        api.models.list()
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict) and "message" in caught.value.body


def chat_deltas(api: openai.OpenAI) -> Iterator[str]:
    stream = api.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices:
            yield chunk.choices[0].delta.content or ""


def test_upstream_drop_cuts_a_stream(sim: SimProcess, pod_id: str) -> None:
    sim.set_fault("upstream_drop", count=1)
    received: list[str] = []
    with client(sim, pod_id) as api, pytest.raises((httpx.HTTPError, openai.APIError)):
        received.extend(chat_deltas(api))
    assert len(received) <= 2
    with client(sim, pod_id) as api:
        assert "".join(chat_deltas(api))


def test_upstream_drop_cuts_a_json_body(sim: SimProcess, pod_id: str) -> None:
    sim.set_fault("upstream_drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(
            sim.pod_url(pod_id) + "/v1/models", headers={"Authorization": f"Bearer {POD_KEY}"}
        )


def test_unknown_and_terminated_pods_are_502(sim: SimProcess, pod_id: str) -> None:
    assert httpx.get(sim.pod_url("nosuchpod00000") + "/health").status_code == 502
    assert httpx.get(sim.pod_url(pod_id, port=9999) + "/health").status_code == 502
    sim.graphql(f'mutation {{ podTerminate(input: {{podId: "{pod_id}"}}) }}')
    assert httpx.get(sim.pod_url(pod_id) + "/health").status_code == 502


def test_upstream_slow_makes_an_answer_start_past_the_edge_timeout() -> None:
    """8 tokens 0.5 s apart cannot start within a 2 s edge limit; without the fault they do
    (the margin is wide both ways: 4 s of generation, and 2 s for an instant answer)."""
    with SimProcess(edge_timeout_seconds=2.0) as sim:
        pod = sim.create_pod()
        sim.wait_serving(pod)
        url = sim.pod_url(pod) + "/v1/chat/completions"
        body = {"messages": MESSAGES, "max_tokens": 8}
        sim.set_fault("upstream_slow", count=1, seconds=0.5)
        assert httpx.post(url, json=body, timeout=30).status_code == 524
        assert httpx.post(url, json=body, timeout=30).status_code == 200


def test_traffic_counts_what_reached_the_pod(sim: SimProcess, pod_id: str) -> None:
    url = sim.pod_url(pod_id)
    auth = {"Authorization": f"Bearer {POD_KEY}"}
    before = sim.pod_traffic(pod_id)
    httpx.get(url + "/health?probe=1")
    httpx.post(url + "/v1/chat/completions", json={"messages": MESSAGES}, headers=auth)
    httpx.post(url + "/v1/chat/completions", json={"model": 5}, headers=auth)
    httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    traffic = sim.pod_traffic(pod_id)
    assert traffic["received"] == before["received"] + 4
    assert traffic["model_calls"] == before["model_calls"] + 1  # the 400 ran no model
    health, chat, refused, models = traffic["recent"][-4:]
    assert (health["path"], health["query"], health["authorized"]) == ("/health", "probe=1", False)
    assert (chat["status"], chat["outcome"], chat["authorized"]) == (200, "answered", True)
    assert json.loads(chat["body"]) == {"messages": MESSAGES}
    assert (refused["status"], models["status"], models["authorized"]) == (400, 401, False)
    assert POD_KEY not in json.dumps(traffic)  # the key itself is never kept


def test_a_client_that_hangs_up_abandons_its_answer(sim: SimProcess, pod_id: str) -> None:
    """vLLM aborts a request whose client left; the pod counts it as cancelled."""
    url = sim.pod_url(pod_id) + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {POD_KEY}"}
    body = {"messages": MESSAGES, "max_tokens": 20}
    sim.set_fault("upstream_slow", seconds=0.5, pod_id=pod_id)  # a 10 s answer
    before = sim.pod_traffic(pod_id)["cancelled"]
    target, raw = urllib.parse.urlsplit(url), json.dumps(body).encode()
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"Authorization: Bearer {POD_KEY}\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    assert target.hostname is not None and target.port is not None
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall(head.encode() + raw)
        wait_until(
            lambda: sim.pod_traffic(pod_id)["recent"][-1]["outcome"] == "pending",
            "the pod to start on the answer",
        )  # then hang up
    wait_until(
        lambda: sim.pod_traffic(pod_id)["cancelled"] == before + 1, "the JSON answer abandoned"
    )
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=auth) as stream:
        for _ in stream.iter_raw():
            break  # the first event, then hang up
    wait_until(lambda: sim.pod_traffic(pod_id)["cancelled"] == before + 2, "the stream abandoned")
    assert [r["outcome"] for r in sim.pod_traffic(pod_id)["recent"][-2:]] == ["cancelled"] * 2
