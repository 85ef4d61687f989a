"""A tiny vLLM-like upstream for the proxy's tests, run as a real uvicorn process.

Deterministic answers (the reply echoes the last message), JSON or SSE with
`include_usage`, a configurable delay per token, call counters (`total`: completions and
embeddings answered; `received`: every request other than /control and /calls), vLLM-like
OpenAI-shaped 400s for bodies vLLM would refuse (bad JSON, wrong field types), and a few
failure switches set through `POST /control` (status errors, drops mid-stream, stalls).
`/v1/audio/transcriptions` stands for a route the proxy passes through: it answers after
ten token delays, or counts a cancellation if the caller leaves first.
`python tests/proxy/fake_upstream.py PORT [API_KEY]`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson
import uvicorn

CONTROL: dict[str, Any] = {"token_delay": 0.0, "fail_status": None, "drop_after": None}
CALLS: dict[str, int] = {"total": 0, "cancelled": 0, "received": 0}
# Fields vLLM validates, with the JSON types it accepts (null is fine too).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "messages": (list,),
    "max_tokens": (int,),
    "stream": (bool,),
}
API_KEY = sys.argv[2] if len(sys.argv) > 2 else None


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
    )
    await send({"type": "http.response.body", "body": body})


def _words(request: dict[str, Any]) -> list[str]:
    if "messages" in request:
        text = str(request["messages"][-1].get("content", ""))
    else:
        text = str(request.get("prompt", ""))
    count = int(request.get("max_tokens") or 8)
    words = (f"echo {text}".split() * count)[:count]
    return [w + " " for w in words]


def _chunk(request_id: str, chat: bool, model: str, piece: dict[str, Any]) -> bytes:
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": 1700000000,
        "model": model,
        "choices": [piece] if piece else [],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _hung_up(receive: Any, seconds: float) -> bool:
    """Wait `seconds` like a server working on a whole answer; True if the client left."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(gone(), seconds)
    except TimeoutError:
        return False
    return True


def _wrong_type(value: Any, types: tuple[type, ...]) -> bool:
    if value is None:
        return False
    if isinstance(value, bool) and bool not in types:
        return True  # JSON true is not a number
    return not isinstance(value, types)


def _invalid(request: Any) -> bytes | None:
    """The 400 body vLLM would send for `request` (parsed JSON), None if it is acceptable."""
    if not isinstance(request, dict):
        problem = "the body must be a JSON object"
    else:
        wrong = [
            name for name, types in _FIELD_TYPES.items() if _wrong_type(request.get(name), types)
        ]
        if not wrong:
            return None
        problem = f"{wrong[0]}: wrong type"
    error = {"message": problem, "type": "BadRequestError", "param": None, "code": 400}
    return orjson.dumps({"error": error})


async def _completion(scope: Any, receive: Any, send: Any, chat: bool) -> None:
    try:
        request = orjson.loads(await _body(receive))
    except orjson.JSONDecodeError:
        request = None
    refusal = _invalid(request)
    if refusal is not None:
        await _send(send, 400, refusal)
        return
    CALLS["total"] += 1
    if CONTROL["fail_status"]:
        await _send(send, CONTROL["fail_status"], b"<html>bad gateway</html>", b"text/html")
        return
    words = _words(request)
    model = request.get("model", "m")
    usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
    request_id = "chatcmpl-1" if chat else "cmpl-1"
    if not request.get("stream"):
        if CONTROL["token_delay"] and await _hung_up(receive, CONTROL["token_delay"] * len(words)):
            CALLS["cancelled"] += 1  # the proxy closed the connection while we "generated"
            return
        text = "".join(words)
        choice: dict[str, Any] = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
            if chat
            else {"index": 0, "text": text, "finish_reason": "length"}
        )
        body = {
            "id": request_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": 1700000000,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
        await _send(send, 200, orjson.dumps(body))
        return
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.ensure_future(watch())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    try:
        for index, word in enumerate(words):
            if CONTROL["drop_after"] is not None and index >= CONTROL["drop_after"]:
                raise ConnectionAbortedError
            if CONTROL["token_delay"]:
                await asyncio.sleep(CONTROL["token_delay"])
            if gone.is_set():
                CALLS["cancelled"] += 1
                return
            delta: dict[str, Any] = {"content": word}
            if index == 0:
                delta["role"] = "assistant"
            piece = (
                {"index": 0, "delta": delta, "finish_reason": None}
                if chat
                else {"index": 0, "text": word, "finish_reason": None}
            )
            if index == len(words) - 1:
                piece["finish_reason"] = "length"
            await send(
                {
                    "type": "http.response.body",
                    "body": _chunk(request_id, chat, model, piece),
                    "more_body": True,
                }
            )
        if (request.get("stream_options") or {}).get("include_usage"):
            last = orjson.loads(_chunk(request_id, chat, model, {})[6:])
            last["usage"] = usage
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + orjson.dumps(last) + b"\n\n",
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    finally:
        watcher.cancel()


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path, method = scope["path"], scope["method"]
    if path == "/control":
        CONTROL.update(orjson.loads(await _body(receive)))
        await _send(send, 200, orjson.dumps({"control": CONTROL, "calls": CALLS}))
        return
    if path == "/calls":
        await _send(send, 200, orjson.dumps(CALLS))
        return
    CALLS["received"] += 1
    if API_KEY and path.startswith("/v1"):
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if auth != f"Bearer {API_KEY}".encode():
            await _send(
                send, 401, b'{"error":{"message":"bad key","type":"auth","param":null,"code":401}}'
            )
            return
    if path == "/v1/models" and method == "GET":
        await _send(
            send,
            200,
            b'{"object":"list","data":[{"id":"m","object":"model","max_model_len":4096}]}',
        )
    elif path == "/v1/audio/transcriptions":  # not cacheable: the proxy passes it through
        await _body(receive)
        if await _hung_up(receive, CONTROL["token_delay"] * 10):
            CALLS["cancelled"] += 1
            return
        await _send(send, 200, b'{"text":"hello"}')
    elif path == "/v1/chat/completions":
        await _completion(scope, receive, send, chat=True)
    elif path == "/v1/completions":
        await _completion(scope, receive, send, chat=False)
    elif path == "/v1/embeddings":
        CALLS["total"] += 1
        request = orjson.loads(await _body(receive))
        await _send(
            send,
            200,
            orjson.dumps(
                {
                    "object": "list",
                    "data": [
                        {
                            "object": "embedding",
                            "index": 0,
                            "embedding": [len(str(request.get("input"))), 0.5],
                        }
                    ],
                    "model": "m",
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            ),
        )
    elif path == "/v1/echo":
        await _send(
            send,
            200,
            orjson.dumps(
                {
                    "method": method,
                    "query": scope["query_string"].decode(),
                    "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                    "time": time.time(),
                }
            ),
        )
    else:
        await _send(
            send,
            404,
            b'{"error":{"message":"not found","type":"NotFound","param":null,"code":404}}',
        )


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        loop="uvloop",
        http="httptools",
    )
