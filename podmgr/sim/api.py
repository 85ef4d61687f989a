"""`POST /graphql`: RunPod's API as the `runpod` SDK sees it, with the API-level faults.

Order of play for one call: the key is checked (HTTP 401 when wrong, as RunPod answers),
then the call-level faults shared with the REST API are drawn
(podmgr/sim/operations.py `draw_call_faults`: `api_error` may answer with an HTML error
page, which the SDK fails decoding; `pod_crash` / `vllm_die` may strike a pod;
`api_something_went_wrong` may answer RunPod's generic error), a read-only key's mutation
answers `Unauthorized`, then the query runs; its resolvers call the world operations,
where `list_error`, `capacity`, `resume_no_gpus`, `transient_status` and
`api_error_after_apply` play. `api_slow` delays the answer after the query ran: like a
slow RunPod, the work is done even when the client gave up waiting. The three `api_*`
faults take an optional `field` parameter: they then match only requests for that root
field (e.g. `podFindAndDeployOnDemand`, `podTerminate`, `pod`, `myself`, `gpuTypes`) or
operation (`create`, `start`, `stop`, `terminate`, `get`, `list`: the same names on REST).

Malformed or invalid queries get GraphQL errors with HTTP 200 and `data: null`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    parse,
    validate,
)

from podmgr.logs import get_logger
from podmgr.sim.operations import (
    GRAPHQL_OPS,
    SOMETHING_WENT_WRONG,
    SimApiError,
    check_access,
    draw_call_faults,
)
from podmgr.sim.reply import cloudflare_page
from podmgr.sim.resolvers import RootResolvers
from podmgr.sim.schema import runpod_schema
from podmgr.sim.world import WORLD, SimWorld

__all__ = ["SOMETHING_WENT_WRONG", "handle_graphql", "run_query"]

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


def run_query(
    world: SimWorld, body: dict[str, Any], document: DocumentNode
) -> tuple[dict[str, Any], list[GraphQLError]]:
    """Validate and execute one parsed GraphQL request: the answer and the errors raised."""
    schema = runpod_schema()
    problems = validate(schema, document)
    if problems:
        return _error_json(problems, "GRAPHQL_VALIDATION_FAILED"), []
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
    return answer, list(result.errors or [])


def _went_wrong(fields: list[str], message: str = SOMETHING_WENT_WRONG) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if fields:
        error["path"] = [fields[0]]
    return {"data": dict.fromkeys(fields) or None, "errors": [error]}


def _is_mutation(document: DocumentNode) -> bool:
    return any(
        isinstance(definition, OperationDefinitionNode)
        and definition.operation == OperationType.MUTATION
        for definition in document.definitions
    )


def _page(status: int) -> web.Response:
    return web.Response(text=cloudflare_page(status), status=status, content_type="text/html")


def _page_status(answer: dict[str, Any], errors: Sequence[GraphQLError]) -> int | None:
    """An operation asked for an HTML error page (e.g. `list_error` with `status`)."""
    for error in errors:
        original = error.original_error
        if isinstance(original, SimApiError) and original.page_status is not None:
            return original.page_status
    return None


async def handle_graphql(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    world.graphql_requests += 1
    key = _api_key(request)
    try:
        check_access(world, key, mutation=False)
    except SimApiError:
        return _json({"errors": [{"message": "Unauthorized"}]}, status=401)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"errors": [{"message": "POST body is not valid JSON"}]}, status=400)
    parsed = _parse(body)
    fields = _root_fields(parsed) if isinstance(parsed, DocumentNode) else []
    targets = {*fields, *(GRAPHQL_OPS[f] for f in fields if f in GRAPHQL_OPS)}
    calls = draw_call_faults(world, targets)
    if calls.error is not None and calls.error.page_status is not None:
        return _page(calls.error.page_status)
    if calls.error is not None:
        answer = _went_wrong(fields)
    elif not isinstance(parsed, DocumentNode):
        answer = parsed
    elif _is_mutation(parsed) and key in world.settings.read_only_keys:
        # A valid key without permission: HTTP 200 with message `Unauthorized`
        # (RUNPOD_FACTS.md, "Errors as they arrive").
        answer = _went_wrong(fields, "Unauthorized")
    else:
        answer, errors = run_query(world, body, parsed)
        status = _page_status(answer, errors)
        if status is not None:
            return _page(status)
    if calls.slow_seconds:
        _log.info("fault_fired", fault="api_slow", seconds=calls.slow_seconds, fields=fields)
        await asyncio.sleep(calls.slow_seconds)
    return _json(answer)
