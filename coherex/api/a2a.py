"""Every saved agent as an A2A agent (the `a2a-sdk` package, used only here).

- Cards: `/.well-known/agent-card.json` is the install's card (its skills are the caller's team's
  agents; none without a key), `/a2a/agents/{name}/.well-known/agent-card.json` one agent's card
  (its skill from the spec; 404 for another team). Both name the bearer-token (API key) scheme.
- JSON-RPC at `/a2a/agents/{name}` (and `/a2a`, naming the agent in the message's
  `metadata.agent`): A2A 1.0 (`SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`,
  `SubscribeToTask`) and 0.3 (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`).
- A task is an execution (task id = execution id, `trigger: a2a`): created with the caller's
  identity (inputs, quotas, audit as on the HTTP API), its status updates follow its events, and
  cancelling it stops the run. The message's data part gives the inputs; a text part fills the
  agent's only string input.
- Auth and rate limit: an API key as bearer token, as on `/api`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any
from uuid import UUID

from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    InvalidParamsError,
    InvalidRequestError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coherex import __version__
from coherex.api.deps import ApiState, Caller, Unauthorized, bearer_caller, error_body, error_response
from coherex.errors import CoherexError, NotFound
from coherex.services.follow import follow
from coherex.services.runs import get_run, run_in_team
from coherex.spec import AgentSpec
from coherex.store.models import Agent, Event, Execution

CARD_PATH = "/.well-known/agent-card.json"
RPC_PATH = "/a2a"
_STATES = {
    "pending": pb.TASK_STATE_SUBMITTED,
    "running": pb.TASK_STATE_WORKING,
    "completed": pb.TASK_STATE_COMPLETED,
    "failed": pb.TASK_STATE_FAILED,
    "timed_out": pb.TASK_STATE_FAILED,
    "cancelled": pb.TASK_STATE_CANCELED,
}
_SCHEME = "coherexApiKey"


# ---------------------------------------------------------------------------- cards
def _security(card: pb.AgentCard) -> None:
    card.security_schemes[_SCHEME].http_auth_security_scheme.CopyFrom(
        pb.HTTPAuthSecurityScheme(
            scheme="bearer",
            bearer_format="Coherex API key",
            description="An API key of your team (`coherex keys create NAME`) as `Authorization: Bearer "
            "<key>`.",
        )
    )
    requirement = card.security_requirements.add()
    requirement.schemes[_SCHEME].CopyFrom(pb.StringList())


def skill(agent: Agent, spec: AgentSpec) -> pb.AgentSkill:
    inputs = spec.spec.inputs or {}
    described = "; ".join(
        f"{n} ({d.type}{', optional' if d.default is not None else ''})"
        + (f": {d.description}" if d.description else "")
        for n, d in inputs.items()
    )
    about = agent.description or spec.metadata.description or f"Runs the Coherex agent {agent.name}."
    return pb.AgentSkill(
        id=agent.name,
        name=agent.name,
        description=about + (f" Inputs: {described}." if described else ""),
        tags=[f"{k}={v}" for k, v in (spec.metadata.labels or {}).items()] or ["coherex"],
        input_modes=["text/plain", "application/json"],
        output_modes=["text/plain", "application/json"],
    )


def _card(name: str, description: str, url: str, skills: list[pb.AgentSkill]) -> pb.AgentCard:
    card = pb.AgentCard(
        name=name,
        description=description,
        version=__version__,
        supported_interfaces=[
            pb.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
            pb.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=pb.AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=skills,
    )
    card.provider.organization, card.provider.url = "Coherex", url.split(RPC_PATH, 1)[0]
    _security(card)
    return card


async def _agents(st: ApiState, who: Caller, name: str | None = None) -> list[tuple[Agent, AgentSpec]]:
    from coherex.services.agents import agents_with_specs

    out = await agents_with_specs(st.db, who.identity, who.team_id, name)
    if name and not out:
        raise NotFound(f"There is no agent {name!r} in this team.")
    return out


def _base(st: ApiState, request: Request) -> str:
    if st.settings.public_url:
        return st.settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


# ---------------------------------------------------------------------------- tasks = executions
def _text(execution: Execution) -> str:
    output = execution.output
    return str(output.get("text") or "") if isinstance(output, dict) else str(output or "")


def _status(execution: Execution, note: str | None = None) -> pb.TaskStatus:
    status = pb.TaskStatus(state=_STATES[execution.status])
    said = note or (execution.error if execution.status != "completed" else None)
    if said:
        status.message.CopyFrom(
            pb.Message(
                message_id=f"{execution.id}-status",
                role=pb.ROLE_AGENT,
                task_id=str(execution.id),
                context_id=str(execution.id),
                parts=[new_text_part(said)],
            )
        )
    status.timestamp.FromDatetime(execution.updated_at)
    return status


def _artifacts(execution: Execution) -> list[pb.Artifact]:
    if execution.status != "completed":
        return []
    parts = [new_text_part(_text(execution))]
    sources = (execution.output or {}).get("sources") if isinstance(execution.output, dict) else None
    if sources:
        parts.append(new_data_part({"sources": sources}, media_type="application/json"))
    return [pb.Artifact(artifact_id=f"{execution.id}-answer", name="answer", parts=parts)]


def task_of(execution: Execution, history: list[pb.Message] | None = None) -> pb.Task:
    task = pb.Task(
        id=str(execution.id),
        context_id=str(execution.id),
        status=_status(execution),
        artifacts=_artifacts(execution),
        history=history or [],
    )
    task.metadata.update({"agent_version": execution.agent_version, "cost_usd": float(execution.cost_usd)})
    return task


def _step(event: Event) -> str:
    p = event.payload or {}
    if event.type == "llm_call":
        calls = [c.get("name") for c in p.get("tool_calls") or []]
        return f"model {event.name}: " + (f"calls {', '.join(calls)}" if calls else "answers")
    if event.type in ("tool_call", "tool_result"):
        return f"tool {event.name}" + (
            "" if event.type == "tool_call" else " done" if p.get("ok") else " failed"
        )
    return f"{event.type}: {p.get('message') or p.get('status') or event.name}"[:500]


def inputs_from(message: pb.Message, spec: AgentSpec) -> dict[str, Any]:
    """A data part is the inputs; else the text fills the agent's only string input."""
    data = [d for d in get_data_parts(message.parts) if isinstance(d, dict)]
    if data:
        declared = spec.spec.inputs or {}
        # protobuf numbers are doubles: whole ones go back to int for integer inputs
        return {
            k: int(v)
            if isinstance(v, float) and v.is_integer() and k in declared and declared[k].type == "integer"
            else v
            for k, v in data[0].items()
        }
    text = "\n".join(get_text_parts(message.parts)).strip()
    strings = [n for n, d in (spec.spec.inputs or {}).items() if d.type == "string"]
    if text and len(strings) == 1:
        return {strings[0]: text}
    return {}


class ExecutionHandler(RequestHandler):
    """A2A requests answered from executions; `context.state["coherex"]` = (caller, state, agent name)."""

    def _who(self, context: ServerCallContext) -> tuple[Caller, ApiState, str | None]:
        return context.state["coherex"]

    async def _start(self, params: pb.SendMessageRequest, context: ServerCallContext) -> Execution:
        who, st, name = self._who(context)
        message = params.message
        if message.task_id:
            raise UnsupportedOperationError("A Coherex task runs once; send a new message without taskId.")
        if not name:
            name = dict(message.metadata.items()).get("agent") or dict(params.metadata.items()).get("agent")
        if not name:
            raise InvalidParamsError("Name the agent: send to /a2a/agents/<name>, or set metadata.agent.")
        try:
            [(agent, spec)] = await _agents(st, who, str(name))
            return await st.runtime.create(
                who.identity, who.team_id, agent, trigger="a2a", inputs=inputs_from(message, spec), queue=True
            )
        except CoherexError as exc:
            raise _a2a_error(exc) from None

    async def _execution(self, context: ServerCallContext, task_id: str) -> Execution:
        who, st, _ = self._who(context)
        try:
            wanted = UUID(task_id)
        except ValueError:
            raise TaskNotFoundError(f"Task {task_id} was not found.") from None
        try:
            return await run_in_team(st.db, who.identity, who.team_id, wanted)
        except NotFound:
            raise TaskNotFoundError(f"Task {task_id} was not found.") from None

    async def on_message_send(self, params: pb.SendMessageRequest, context: ServerCallContext) -> pb.Task:
        who, st, _ = self._who(context)
        execution = await self._start(params, context)
        if not params.configuration.return_immediately:
            async for item in follow(st.db, who.identity, execution.id):
                if isinstance(item, Execution):
                    execution = item
        return task_of(execution, [_with_ids(params.message, execution)])

    async def on_message_send_stream(
        self, params: pb.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        execution = await self._start(params, context)
        yield task_of(execution, [_with_ids(params.message, execution)])
        async for event in self._updates(context, execution):
            yield event

    async def on_subscribe_to_task(
        self, params: pb.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        execution = await self._execution(context, params.id)
        yield task_of(execution)
        async for event in self._updates(context, execution):
            yield event

    async def _updates(self, context: ServerCallContext, execution: Execution) -> AsyncGenerator[Any]:
        who, st, _ = self._who(context)
        async for item in follow(st.db, who.identity, execution.id):
            if isinstance(item, Execution):
                for artifact in _artifacts(item):
                    yield pb.TaskArtifactUpdateEvent(
                        task_id=str(item.id), context_id=str(item.id), artifact=artifact, last_chunk=True
                    )
                yield pb.TaskStatusUpdateEvent(
                    task_id=str(item.id), context_id=str(item.id), status=_status(item)
                )
                return
            if item.type == "status":
                continue  # the final row says it, with the answer
            working = execution.model_copy(update={"status": "running", "updated_at": item.created_at})
            yield pb.TaskStatusUpdateEvent(
                task_id=str(execution.id), context_id=str(execution.id), status=_status(working, _step(item))
            )

    async def on_get_task(self, params: pb.GetTaskRequest, context: ServerCallContext) -> pb.Task:
        return task_of(await self._execution(context, params.id))

    async def on_cancel_task(self, params: pb.CancelTaskRequest, context: ServerCallContext) -> pb.Task:
        who, st, _ = self._who(context)
        execution = await self._execution(context, params.id)
        if not execution.finished:
            await st.runtime.stop(who.identity, execution.id)
            execution = await _until_finished(st, who, execution.id, seconds=15)
        return task_of(execution)

    async def on_list_tasks(
        self, params: pb.ListTasksRequest, context: ServerCallContext
    ) -> pb.ListTasksResponse:
        raise UnsupportedOperationError("Listing tasks is not offered; GET /api/executions lists them.")

    async def on_create_task_push_notification_config(self, params: Any, context: ServerCallContext) -> Any:
        raise PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(self, params: Any, context: ServerCallContext) -> Any:
        raise PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(self, params: Any, context: ServerCallContext) -> Any:
        raise PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(self, params: Any, context: ServerCallContext) -> None:
        raise PushNotificationNotSupportedError()

    async def on_get_extended_agent_card(self, params: Any, context: ServerCallContext) -> pb.AgentCard:
        raise UnsupportedOperationError(
            "The agent card is public to your team's keys; there is no extended one."
        )


def _with_ids(message: pb.Message, execution: Execution) -> pb.Message:
    copy = pb.Message()
    copy.CopyFrom(message)
    copy.task_id = copy.context_id = str(execution.id)
    return copy


async def _until_finished(st: ApiState, who: Caller, execution_id: UUID, seconds: float) -> Execution:
    """The row once the run has ended (a worker stops a run within a second or two), or as it is then."""
    deadline = time.monotonic() + seconds
    async for item in follow(st.db, who.identity, execution_id, poll_seconds=0.5):
        if isinstance(item, Execution) or time.monotonic() > deadline:
            break
    return await get_run(st.db, who.identity, execution_id)


def _a2a_error(exc: CoherexError) -> Exception:
    text = exc.message + (f" {exc.hint}" if exc.hint else "")
    if isinstance(exc, NotFound):
        return InvalidParamsError(text, data={"code": exc.code})
    return InvalidRequestError(text, data={"code": exc.code})


# ---------------------------------------------------------------------------- HTTP
class _Context(DefaultServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["coherex"] = (
            request.scope["coherex_caller"],
            request.app.state.coherex,
            request.path_params.get("name"),
        )
        return context


async def _authenticate(request: Request) -> Caller | Response:
    try:
        return await bearer_caller(request.app.state.coherex, request, "A2A")
    except CoherexError as exc:
        challenge = {"WWW-Authenticate": 'Bearer realm="coherex"'} if isinstance(exc, Unauthorized) else None
        return error_response(exc, headers=challenge)


def routes() -> list[Route]:
    dispatcher = JsonRpcDispatcher(ExecutionHandler(), context_builder=_Context(), enable_v0_3_compat=True)

    async def rpc(request: Request) -> Response:
        who = await _authenticate(request)
        if isinstance(who, Response):
            return who
        request.scope["coherex_caller"] = who
        return await dispatcher.handle_requests(request)

    async def install_card(request: Request) -> Response:
        """The install's card: public, so clients learn how to sign in; with a key, the team's agents as
        skills."""
        st: ApiState = request.app.state.coherex
        skills: list[pb.AgentSkill] = []
        if request.headers.get("authorization"):
            who = await _authenticate(request)
            if isinstance(who, Response):
                return who
            skills = [skill(a, spec) for a, spec in await _agents(st, who)]
        base = _base(st, request)
        card = _card(
            "Coherex",
            "The agents of your Coherex team. Send to /a2a/agents/<skill id>, or to "
            "/a2a with metadata.agent = <skill id>.",
            f"{base}{RPC_PATH}",
            skills,
        )
        return JSONResponse(agent_card_to_dict(card), headers={"Cache-Control": "no-store"})

    async def agent_card(request: Request) -> Response:
        st: ApiState = request.app.state.coherex
        who = await _authenticate(request)
        if isinstance(who, Response):
            return who
        try:
            [(agent, spec)] = await _agents(st, who, request.path_params["name"])
        except NotFound as exc:
            return JSONResponse(error_body(exc.code, exc.message), status_code=404)
        description = agent.description or spec.metadata.description or f"The Coherex agent {agent.name}."
        card = _card(
            agent.name,
            description,
            f"{_base(st, request)}{RPC_PATH}/agents/{agent.name}",
            [skill(agent, spec)],
        )
        return JSONResponse(agent_card_to_dict(card), headers={"Cache-Control": "no-store"})

    return [
        Route(CARD_PATH, install_card, methods=["GET"], include_in_schema=False),
        Route(RPC_PATH, rpc, methods=["POST"], include_in_schema=False),
        Route(RPC_PATH + "/agents/{name}" + CARD_PATH, agent_card, methods=["GET"], include_in_schema=False),
        Route(RPC_PATH + "/agents/{name}", rpc, methods=["POST"], include_in_schema=False),
    ]


def mount(app: Any) -> None:
    app.router.routes.extend(routes())
