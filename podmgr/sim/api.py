"""`POST /graphql`: RunPod's API as the `runpod` SDK sees it, with the API-level faults.

Order of play for one call: the key is checked (HTTP 401 when wrong, as RunPod answers),
then `api_error` may answer with an HTML error page (the SDK fails decoding it),
`pod_crash` / `vllm_die` may strike a pod, `api_something_went_wrong` may answer RunPod's
generic error, `list_error` may fail a request that lists pods (`myself`), then the
query runs (with `capacity` and `resume_no_gpus` inside the
resolvers). `api_slow` delays the answer after the query ran: like a slow RunPod, the
work is done even when the client gave up waiting. The three `api_*` faults take an
optional `field` parameter: they then match only requests for that root field (e.g.
`podFindAndDeployOnDemand`, `podTerminate`, `pod`, `myself`, `gpuTypes`).

Malformed or invalid queries get GraphQL errors with HTTP 200 and `data: null`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)

from podmgr.logs import get_logger
from podmgr.sim.reply import cloudflare_page
from podmgr.sim.resolvers import RootResolvers
from podmgr.sim.schema import runpod_schema
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["SOMETHING_WENT_WRONG", "handle_graphql", "run_query"]

SOMETHING_WENT_WRONG = "Something went wrong. Please try again later or contact support."
_log = get_logger("sim.api")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error_json(errors: Sequence[GraphQLError], code: str) -> dict[str, Any]:
    formatted = []
    for error in errors:
        item: dict[str, Any] = dict(error.formatted)
        item["extensions"] = {**(item.get("extensions") or {}), "code": code}
        formatted.append(item)
    return {"data": None, "errors": formatted}


def _api_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.query.get("api_key")


def _has_running(world: SimWorld, params: Mapping[str, Any]) -> bool:
    return world.fleet.pick_running(params.get("pod_id")) is not None


def _strike_pods(world: SimWorld) -> None:
    """Draw `pod_crash` and `vllm_die`: each firing hits one RUNNING pod."""
    crash = world.faults.draw("pod_crash", lambda p: _has_running(world, p))
    if crash is not None:
        pod = world.fleet.pick_running(crash.spec.params.get("pod_id"))
        if pod is not None:
            world.fleet.stop(pod)
            _log.info("fault_fired", fault="pod_crash", pod_id=pod.id)
    die = world.faults.draw("vllm_die", lambda p: _has_running(world, p))
    if die is not None:
        pod = world.fleet.pick_running(die.spec.params.get("pod_id"))
        if pod is not None:
            pod.vllm_dead = True
            _log.info("fault_fired", fault="vllm_die", pod_id=pod.id)


def _root_fields(document: DocumentNode | None) -> list[str]:
    """Names of the root fields a request asks for (`podFindAndDeployOnDemand`, ...)."""
    if document is None:
        return []
    return [
        selection.name.value
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
        if isinstance(selection, FieldNode)
    ]


def _parse(body: Any) -> DocumentNode | dict[str, Any]:
    """The parsed query, or the error answer for a body that holds none."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return {"data": None, "errors": [{"message": "POST body must contain a query string"}]}
    try:
        return parse(body["query"])
    except GraphQLError as error:
        return _error_json([error], "GRAPHQL_PARSE_FAILED")


def run_query(world: SimWorld, body: dict[str, Any], document: DocumentNode) -> dict[str, Any]:
    """Validate and execute one parsed GraphQL request."""
    schema = runpod_schema()
    problems = validate(schema, document)
    if problems:
        return _error_json(problems, "GRAPHQL_VALIDATION_FAILED")
    result = execute_sync(
        schema,
        document,
        root_value=RootResolvers(world, _log),
        variable_values=body.get("variables"),
        operation_name=body.get("operationName"),
    )
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [error.formatted for error in result.errors]
    return answer


def _went_wrong(fields: list[str]) -> dict[str, Any]:
    error: dict[str, Any] = {"message": SOMETHING_WENT_WRONG}
    if fields:
        error["path"] = [fields[0]]
    return {"data": dict.fromkeys(fields) or None, "errors": [error]}


async def handle_graphql(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    world.graphql_requests += 1
    if _api_key(request) not in world.settings.api_keys:
        return _json({"errors": [{"message": "Unauthorized"}]}, status=401)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"errors": [{"message": "POST body is not valid JSON"}]}, status=400)
    parsed = _parse(body)
    fields = _root_fields(parsed) if isinstance(parsed, DocumentNode) else []

    def on_field(params: Mapping[str, Any]) -> bool:
        return not params.get("field") or params["field"] in fields

    api_error = world.faults.draw("api_error", on_field)
    if api_error is not None:
        status = int(api_error.spec.params["status"])
        _log.info("fault_fired", fault="api_error", status=status, fields=fields)
        return web.Response(text=cloudflare_page(status), status=status, content_type="text/html")
    slow = world.faults.draw("api_slow", on_field)
    _strike_pods(world)
    listing = world.faults.draw("list_error", lambda _p: "myself" in fields)
    if listing is not None and listing.spec.params.get("status"):
        status = int(listing.spec.params["status"])
        _log.info("fault_fired", fault="list_error", status=status)
        return web.Response(text=cloudflare_page(status), status=status, content_type="text/html")
    if listing is not None:
        _log.info("fault_fired", fault="list_error", fields=fields)
        answer = _went_wrong(fields)
    elif world.faults.draw("api_something_went_wrong", on_field) is not None:
        _log.info("fault_fired", fault="api_something_went_wrong", fields=fields)
        answer = _went_wrong(fields)
    elif isinstance(parsed, DocumentNode):
        answer = run_query(world, body, parsed)
    else:
        answer = parsed
    if slow is not None:
        seconds = float(slow.spec.params["seconds"])
        _log.info("fault_fired", fault="api_slow", seconds=seconds, fields=fields)
        await asyncio.sleep(seconds)
    return _json(answer)
