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

if TYPE_CHECKING:
    from acd.runtime.daemon import Daemon

__all__ = ["AdminApi"]

log = structlog.get_logger("acd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = ("/healthz", "/metrics")


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
        request["role"] = role
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

    async def reload(self, request: web.Request) -> web.Response:
        problems = self.daemon.reload()
        if problems:
            return _json_error(422, "invalid config", [
                {"file": p.file, "line": p.line, "key": p.key, "reason": p.reason}
                for p in problems
            ])
        return web.json_response({"status": "reloaded", "digest": self.daemon.config.digest})
