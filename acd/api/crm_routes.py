"""Admin API routes over the CRM: CDRs, recordings (metadata and audio with HTTP range
requests), contacts (create, read, update, delete, search, merge) and tickets (list, read,
update, notes), agents' status history, and the queue and agent reports.

The service validates; these handlers only translate: `CrmError` -> 422 naming the field,
`NotFound` -> 404, dataclasses -> JSON. List routes answer `{"items": [...], "next": cursor}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.crm.errors import CrmError, NotFound
from acd.crm.validate import UNSET

if TYPE_CHECKING:
    from acd.runtime.daemon import Daemon

__all__ = ["add_crm_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, error: str, detail: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def _json(value: Any, status: int = 200) -> web.Response:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return web.json_response(value, status=status)


def _page(items: list[Any], cursor: str | None) -> web.Response:
    return web.json_response({"items": [dataclasses.asdict(i) for i in items], "next": cursor})


def _guard(fn: Handler) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except CrmError as exc:
            return _error(422, "invalid", {"field": exc.field, "reason": exc.reason})
        except NotFound as exc:
            return _error(404, "not found", str(exc))

    return handler


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise CrmError("(body)", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CrmError("(body)", "must be an object")
    return body


def _only(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise CrmError(extra[0], f"unknown field; allowed: {', '.join(allowed)}")


def add_crm_routes(app: web.Application, daemon: Daemon) -> None:
    def crm() -> Any:
        return daemon.crm

    @_guard
    async def list_cdrs(request: web.Request) -> web.Response:
        a = request.query
        items, cursor = await crm().list_cdrs(
            since=a.get("since"), until=a.get("until"), hotline=a.get("hotline"),
            queue=a.get("queue"), agent=a.get("agent"), direction=a.get("direction"),
            outcome=a.get("outcome"), limit=a.get("limit"), cursor=a.get("cursor"))
        return _page(items, cursor)

    @_guard
    async def get_cdr(request: web.Request) -> web.Response:
        return _json(await crm().get_cdr(request.match_info["ref"]))

    @_guard
    async def get_recording(request: web.Request) -> web.Response:
        return _json(await crm().get_recording(request.match_info["id"]))

    @_guard
    async def recording_audio(request: web.Request) -> web.StreamResponse:
        rec = await crm().get_recording(request.match_info["id"])
        path = Path(rec.path)
        roots = [Path(daemon.config.recording.dir).resolve()]
        if daemon.config.voicemail is not None:
            roots.append(Path(daemon.config.voicemail.dir).resolve())
        resolved = path.resolve()
        if rec.status != "ready" or not any(resolved.is_relative_to(r) for r in roots) \
                or not resolved.is_file():
            return _error(404, "not found", "the recording's audio is not available")
        # aiohttp answers Range requests (206) and conditional ones by itself
        return web.FileResponse(resolved, headers={"Content-Type": "audio/wav"})

    @_guard
    async def list_contacts(request: web.Request) -> web.Response:
        a = request.query
        items, cursor = await crm().search_contacts(phone=a.get("phone"), q=a.get("q"),
                                                    limit=a.get("limit"),
                                                    cursor=a.get("cursor"))
        return _page(items, cursor)

    @_guard
    async def create_contact(request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, ("name", "phone", "email", "notes"))
        return _json(await crm().create_contact(**body), 201)

    @_guard
    async def get_contact(request: web.Request) -> web.Response:
        return _json(await crm().get_contact(request.match_info["id"]))

    @_guard
    async def update_contact(request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, ("name", "phone", "email", "notes"))
        fields = {k: body.get(k, UNSET) for k in ("name", "phone", "email", "notes")}
        return _json(await crm().update_contact(request.match_info["id"], **fields))

    @_guard
    async def delete_contact(request: web.Request) -> web.Response:
        await crm().delete_contact(request.match_info["id"])
        return web.Response(status=204)

    @_guard
    async def merge_contacts(request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, ("sources",))
        return _json(await crm().merge_contacts(request.match_info["id"], body.get("sources")))

    @_guard
    async def list_tickets(request: web.Request) -> web.Response:
        a = request.query
        items, cursor = await crm().list_tickets(
            status=a.get("status"), assignee=a.get("assignee"), contact=a.get("contact"),
            missed=a.get("missed"), hotline=a.get("hotline"), queue=a.get("queue"),
            limit=a.get("limit"), cursor=a.get("cursor"))
        return _page(items, cursor)

    @_guard
    async def get_ticket(request: web.Request) -> web.Response:
        return _json(await crm().get_ticket(request.match_info["id"]))

    @_guard
    async def update_ticket(request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, ("status", "assignee", "priority"))
        fields = {k: body.get(k, UNSET) for k in ("status", "assignee", "priority")}
        return _json(await crm().update_ticket(request.match_info["id"], author="api",
                                               **fields))

    @_guard
    async def add_note(request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, ("text", "author"))
        return _json(await crm().add_note(request.match_info["id"], body.get("text"),
                                          body.get("author") or "api"), 201)

    @_guard
    async def agent_history(request: web.Request) -> web.Response:
        a = request.query
        items, cursor = await crm().list_agent_status(
            agent=request.match_info["id"], since=a.get("since"), until=a.get("until"),
            limit=a.get("limit"), cursor=a.get("cursor"))
        return _page(items, cursor)

    @_guard
    async def queue_report(request: web.Request) -> web.Response:
        a = request.query
        items = await crm().queue_report(since=a.get("since"), until=a.get("until"),
                                         queue=a.get("queue"), sl=a.get("sl"))
        return _page(items, None)

    @_guard
    async def agent_report(request: web.Request) -> web.Response:
        a = request.query
        items = await crm().agent_report(since=a.get("since"), until=a.get("until"),
                                         agent=a.get("agent"))
        return _page(items, None)

    r = app.router
    r.add_get("/cdrs", list_cdrs)
    r.add_get("/cdrs/{ref}", get_cdr)
    r.add_get("/recordings/{id}", get_recording)
    r.add_get("/recordings/{id}/audio", recording_audio)
    r.add_get("/contacts", list_contacts)
    r.add_post("/contacts", create_contact)
    r.add_get("/contacts/{id}", get_contact)
    r.add_patch("/contacts/{id}", update_contact)
    r.add_delete("/contacts/{id}", delete_contact)
    r.add_post("/contacts/{id}/merge", merge_contacts)
    r.add_get("/tickets", list_tickets)
    r.add_get("/tickets/{id}", get_ticket)
    r.add_patch("/tickets/{id}", update_ticket)
    r.add_post("/tickets/{id}/notes", add_note)
    r.add_get("/agents/{id}/history", agent_history)
    r.add_get("/reports/queues", queue_report)
    r.add_get("/reports/agents", agent_report)
