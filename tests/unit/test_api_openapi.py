"""The OpenAPI document and the application agree: every route served is documented with
its methods, and nothing documented is missing."""

from __future__ import annotations

from types import SimpleNamespace

from acd.api.http import AdminApi
from acd.api.openapi import OPENAPI


def _served() -> set[tuple[str, str]]:
    api = AdminApi(SimpleNamespace())  # type: ignore[arg-type]
    out = set()
    for route in api.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        out.add((path, route.method.lower()))
    return out


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    documented = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    served = _served()
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_error_responses_are_described() -> None:
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            assert "responses" in op and op["summary"], (path, method)
            if method in ("post", "patch", "put") and path != "/config/reload":
                assert "422" in op["responses"], (path, method)
