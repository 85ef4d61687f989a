"""The `/v1` request path, in the order a request meets it.

handler (`V1Handler`, the raw ASGI callable mounted at /v1) -> checks (target, headers,
body) and auth (the client's key) -> coalescer (the in-flight table) -> flight (one
upstream call, one `FlightState`) -> relay (feeding a client from a flight, or a plain
pass-through) with sse (events, assembling JSON) and asgi (bounded body, `Responder`).
"""
