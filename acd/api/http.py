"""The admin HTTP API (aiohttp): health, Prometheus metrics, registrations, trunks and
config reload, with bearer tokens (read-only and admin roles).

`/healthz` and `/metrics` need no token; everything else does. List routes answer
`{"items": [...], "next": null}`. Errors are JSON: `{"error": ..., "detail": ...}`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from acd.api.crm_routes import add_crm_routes
from acd.api.openapi import OPENAPI
from acd.queueing import QueueTuningError

if TYPE_CHECKING:
    from acd.runtime.daemon import Daemon

__all__ = ["AdminApi"]

log = structlog.get_logger("acd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = ("/healthz", "/metrics", "/openapi.json")


async def _json_body(request: web.Request) -> Any:
    """The request's JSON object, or the 422 answering a body that is not one."""
    try:
        body = await request.json()
    except ValueError as exc:
        return _json_error(422, "invalid", {"field": "(body)", "reason": f"not JSON: {exc}"})
    if not isinstance(body, dict):
        return _json_error(422, "invalid", {"field": "(body)", "reason": "must be an object"})
    return body


def _json_error(status: int, error: str, detail: Any = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status)


class AdminApi:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.app = web.Application(middlewares=[self._auth_middleware])
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        r.add_get("/registrations", self.registrations)
        r.add_get("/trunks", self.trunks)
        r.add_post("/config/reload", self.reload)
        r.add_get("/queues", self.queues)
        r.add_get("/queues/{name}", self.queue)
        r.add_patch("/queues/{name}", self.patch_queue)
        r.add_get("/agents", self.agents)
        r.add_get("/agents/{id}", self.agent)
        r.add_put("/agents/{id}/status", self.put_agent_status)
        r.add_get("/calls", self.calls)
        r.add_get("/openapi.json", self.openapi)
        add_crm_routes(self.app, daemon)
        r.add_post("/calls/{ref}/recording", self.call_recording)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        log.info("admin API listening", url=f"http://{host}:{port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _role(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        for t in self.daemon.config.admin.tokens:
            if hmac.compare_digest(t.token.encode(), token.strip().encode()):
                return t.role
        return None

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in _PUBLIC:
            return await handler(request)
        role = self._role(request)
        if role is None:
            resp = _json_error(401, "unauthorized", "a valid bearer token is required")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="acd"'
            return resp
        if request.method not in ("GET", "HEAD") and role != "admin":
            return _json_error(403, "forbidden", "this route needs an admin token")
        return await handler(request)

    # routes ------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        d = self.daemon
        return web.json_response({
            "status": "draining" if d.engine.draining else "ok",
            "node": d.config.node_id,
            "uptime": round(d.clock.now() - d.started, 3),
            "config_digest": d.config.digest,
        })

    async def readyz(self, request: web.Request) -> web.Response:
        d = self.daemon
        ready = d.ready and not d.engine.draining
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        self.daemon.refresh_gauges()
        data = generate_latest(self.daemon.engine.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def registrations(self, request: web.Request) -> web.Response:
        items = self.daemon.engine.snapshot_registrations()
        aor = request.query.get("aor")
        if aor:
            items = [i for i in items if i["aor"] == aor]
        return web.json_response({"items": items, "next": None})

    async def trunks(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.daemon.engine.trunks.snapshot(), "next": None})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def calls(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.daemon.engine.calls.snapshot(), "next": None})

    async def call_recording(self, request: web.Request) -> web.Response:
        """On-demand recording: {"action": "start" | "stop" | "pause" | "resume"}."""
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        action = body.get("action")
        if action not in ("start", "stop", "pause", "resume"):
            return _json_error(422, "invalid", {
                "field": "action", "reason": "must be one of start, stop, pause, resume"})
        call = self.daemon.engine.calls.calls.get(request.match_info["ref"])
        if call is None:
            return _json_error(404, "not found", "no such call in progress")
        from acd.recording import CallRecording, RecordingError

        if call.recording is None:
            call.recording = CallRecording(call)
        try:
            getattr(call.recording, action)()
        except RecordingError as exc:
            return _json_error(409, "conflict", str(exc))
        return web.json_response({"call": call.ref, "recording": call.recording.state,
                                  "path": str(call.recording.path or "") or None})

    async def queues(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.daemon.engine.queues.snapshot_queues(),
                                  "next": None})

    async def queue(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for q in self.daemon.engine.queues.snapshot_queues():
            if q["name"] == name:
                return web.json_response(q)
        return _json_error(404, "not found", f"no queue {name!r}")

    async def patch_queue(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            self.daemon.engine.queues.tune(name, body)
        except KeyError:
            return _json_error(404, "not found", f"no queue {name!r}")
        except QueueTuningError as exc:
            return _json_error(422, "invalid", {"field": exc.field, "reason": exc.reason})
        return await self.queue(request)

    async def agents(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self.daemon.engine.queues.snapshot_agents(),
                                  "next": None})

    async def agent(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]
        for a in self.daemon.engine.queues.snapshot_agents():
            if a["id"] == aid:
                return web.json_response(a)
        return _json_error(404, "not found", f"no agent {aid!r}")

    async def put_agent_status(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        status = body.get("status") if isinstance(body, dict) else None
        q = self.daemon.engine.queues
        if aid not in q.dist.agents():
            return _json_error(404, "not found", f"no agent {aid!r}")
        allowed = q.statuses()
        if not isinstance(status, str) or status not in allowed:
            return _json_error(422, "invalid", {
                "field": "status", "reason": f"must be one of {', '.join(allowed)}"})
        q.set_status(aid, status, reason="api")
        return await self.agent(request)

    async def reload(self, request: web.Request) -> web.Response:
        problems = self.daemon.reload()
        if problems:
            return _json_error(422, "invalid config", [
                {"file": p.file, "line": p.line, "key": p.key, "reason": p.reason}
                for p in problems
            ])
        return web.json_response({"status": "reloaded", "digest": self.daemon.config.digest})
