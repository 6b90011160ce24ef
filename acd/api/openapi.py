"""The admin API's OpenAPI 3.1 document, served at /openapi.json.

Written as data next to the routes it describes; `tests/unit/test_api_openapi.py` checks
that every route the application serves is documented and every documented one exists.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]


def _list(item_ref: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item_ref}"}},
        "next": {"type": ["string", "null"], "description": "cursor of the next page"}}}


def _ok(schema: dict[str, Any] | str, description: str = "OK") -> dict[str, Any]:
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = {"$ref": "#/components/responses/Error"}
_INVALID = {"$ref": "#/components/responses/Invalid"}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_PAGE = [_q("limit", "page size (1-500)", {"type": "integer"}),
         _q("cursor", "the `next` of the previous page")]
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _obj(**fields: tuple[str | list[str], str]) -> dict[str, Any]:
    """An object schema whose every field is required: name=(type, description)."""
    return {"type": "object", "required": list(fields), "properties": {
        k: {"type": t, "description": d} for k, (t, d) in fields.items()}}


_INT, _NUM, _NUM_OR_NULL = "integer", "number", ["number", "null"]
_QUEUE_REPORT = _obj(
    queue=("string", "the queue: the last one each call entered"),
    offered=(_INT, "finished calls whose last queue this was, whatever their outcome"),
    answered=(_INT, "answered by an agent"),
    abandoned=(_INT, "the caller hung up while queued"),
    missed=(_INT, "nobody answered and the caller did not give up (max wait, full, no "
                  "agents)"),
    voicemail=(_INT, "sent to voicemail"),
    failed=(_INT, "failed"),
    answered_within_sl=(_INT, "answered after at most sl_seconds in the queue"),
    abandoned_after_sl=(_INT, "hung up after more than sl_seconds in the queue (or after an "
                              "unknown time)"),
    sl_seconds=(_NUM, "the service level threshold, seconds in the queue"),
    service_level=(_NUM_OR_NULL, "answered_within_sl / (answered + abandoned after more "
                                 "than sl_seconds in the queue), in %, as the live queue "
                                 "metric; null without such calls"),
    abandon_rate=(_NUM_OR_NULL, "abandoned / offered, in %"),
    avg_wait_seconds=(_NUM_OR_NULL, "average seconds in the queue of the answered calls "
                                    "(IVR time not included)"),
    max_wait_seconds=(_NUM_OR_NULL, "longest seconds in the queue of an answered call"),
    avg_talk_seconds=(_NUM_OR_NULL, "average talk of the answered calls"),
)
_AGENT_REPORT = _obj(
    agent=("string", "the agent id"),
    offers=(_INT, "queue offers to the agent (agent call legs), answered or not"),
    answered=(_INT, "offers the agent answered"),
    no_answer=(_INT, "offers that rang out; the rest of the unanswered were canceled"),
    rejected=(_INT, "offers the agent rejected"),
    avg_ring_seconds=(_NUM_OR_NULL, "average seconds from offer to answer of the answered "
                                    "offers whose offer time is known"),
    talk_seconds=(_NUM, "total talk of the answered calls naming the agent"),
    avg_talk_seconds=(_NUM_OR_NULL, "average talk of those calls"),
)


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "acd-engine admin API", "version": "1",
             "description": "Live state, call records, contacts and tickets of the engine. "
                            "Every route but /healthz, /metrics and /openapi.json needs "
                            "`Authorization: Bearer <token>`; writes need an admin token."},
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": {"description": "not found / unauthorized / forbidden / conflict",
                      "content": {"application/json": {"schema": {
                          "type": "object", "properties": {"error": {"type": "string"},
                                                           "detail": {}}}}}},
            "Invalid": {"description": "invalid payload: the field and why",
                        "content": {"application/json": {"schema": {
                            "type": "object", "properties": {
                                "error": {"const": "invalid"},
                                "detail": {"type": "object", "properties": {
                                    "field": {"type": "string"},
                                    "reason": {"type": "string"}}}}}}}},
        },
        "schemas": {**{name: _ANY_OBJECT for name in (
            "Registration", "Trunk", "Call", "Queue", "Agent", "Cdr", "Recording", "Contact",
            "Ticket", "TicketDetail", "TicketEvent", "AgentStatusChange")},
            "QueueReport": _QUEUE_REPORT, "AgentReport": _AGENT_REPORT},
    },
    "paths": {
        "/healthz": {"get": {"summary": "liveness", "security": [],
                             "responses": {"200": _ok(_ANY_OBJECT)}}},
        "/readyz": {"get": {"summary": "readiness (503 while starting or draining)",
                            "responses": {"200": _ok(_ANY_OBJECT), "503": _ERR}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text exposition"}}}},
        "/openapi.json": {"get": {"summary": "this document", "security": [],
                                  "responses": {"200": _ok(_ANY_OBJECT)}}},
        "/registrations": {"get": {"summary": "registered contacts",
                                   "parameters": [_q("aor", "only this AOR")],
                                   "responses": {"200": _ok(_list("Registration"))}}},
        "/trunks": {"get": {"summary": "trunks, their registration and health",
                            "responses": {"200": _ok(_list("Trunk"))}}},
        "/calls": {"get": {"summary": "calls in progress",
                           "responses": {"200": _ok(_list("Call"))}}},
        "/calls/{ref}/recording": {"post": {
            "summary": "on-demand recording: start, stop, pause (records silence), resume",
            "parameters": [_p("ref")],
            "requestBody": _body({"type": "object", "required": ["action"], "properties": {
                "action": {"enum": ["start", "stop", "pause", "resume"]}}}),
            "responses": {"200": _ok(_ANY_OBJECT), "404": _ERR, "409": _ERR,
                          "422": _INVALID}}},
        "/queues": {"get": {"summary": "queues with their waiting callers and positions",
                            "responses": {"200": _ok(_list("Queue"))}}},
        "/queues/{name}": {
            "get": {"summary": "one queue", "parameters": [_p("name")],
                    "responses": {"200": _ok("Queue"), "404": _ERR}},
            "patch": {"summary": "tune a queue live (strategy, timeouts, members...)",
                      "parameters": [_p("name")], "requestBody": _body(_ANY_OBJECT),
                      "responses": {"200": _ok("Queue"), "404": _ERR, "422": _INVALID}}},
        "/agents": {"get": {"summary": "agents and their states",
                            "responses": {"200": _ok(_list("Agent"))}}},
        "/agents/{id}": {"get": {"summary": "one agent", "parameters": [_p("id")],
                                 "responses": {"200": _ok("Agent"), "404": _ERR}}},
        "/agents/{id}/status": {"put": {
            "summary": "set the agent's status (available, logged_out or a break reason)",
            "parameters": [_p("id")],
            "requestBody": _body({"type": "object", "required": ["status"],
                                  "properties": {"status": {"type": "string"}}}),
            "responses": {"200": _ok("Agent"), "404": _ERR, "422": _INVALID}}},
        "/agents/{id}/history": {"get": {
            "summary": "the agent's status history", "parameters": [_p("id"), *_PAGE,
                                                                   _q("since", "epoch s"),
                                                                   _q("until", "epoch s")],
            "responses": {"200": _ok(_list("AgentStatusChange")), "422": _INVALID}}},
        "/cdrs": {"get": {
            "summary": "call records, newest first",
            "parameters": [_q("since", "epoch seconds"), _q("until", "epoch seconds"),
                           _q("hotline", ""), _q("queue", ""), _q("agent", ""),
                           _q("direction", "inbound | internal | outbound"),
                           _q("outcome", "answered | missed | abandoned | ..."), *_PAGE],
            "responses": {"200": _ok(_list("Cdr")), "422": _INVALID}}},
        "/cdrs/{ref}": {"get": {"summary": "one call record with its legs",
                                "parameters": [_p("ref")],
                                "responses": {"200": _ok("Cdr"), "404": _ERR}}},
        "/recordings/{id}": {"get": {"summary": "recording metadata", "parameters": [_p("id")],
                                     "responses": {"200": _ok("Recording"), "404": _ERR}}},
        "/recordings/{id}/audio": {"get": {
            "summary": "the WAV file; honours Range requests (206)", "parameters": [_p("id")],
            "responses": {"200": {"description": "audio/wav"},
                          "206": {"description": "partial audio/wav"}, "404": _ERR}}},
        "/contacts": {
            "get": {"summary": "search contacts by phone (any format) or name",
                    "parameters": [_q("phone", ""), _q("q", "name contains"), *_PAGE],
                    "responses": {"200": _ok(_list("Contact")), "422": _INVALID}},
            "post": {"summary": "create a contact",
                     "requestBody": _body({"type": "object", "properties": {
                         "name": {"type": "string"}, "phone": {"type": "string"},
                         "email": {"type": "string"}, "notes": {"type": "string"}}}),
                     "responses": {"201": _ok("Contact"), "422": _INVALID}}},
        "/contacts/{id}": {
            "get": {"summary": "one contact", "parameters": [_p("id")],
                    "responses": {"200": _ok("Contact"), "404": _ERR}},
            "patch": {"summary": "update a contact", "parameters": [_p("id")],
                      "requestBody": _body(_ANY_OBJECT),
                      "responses": {"200": _ok("Contact"), "404": _ERR, "422": _INVALID}},
            "delete": {"summary": "delete a contact", "parameters": [_p("id")],
                       "responses": {"204": {"description": "deleted"}, "404": _ERR}}},
        "/contacts/{id}/merge": {"post": {
            "summary": "merge duplicates into this contact (their tickets move here)",
            "parameters": [_p("id")],
            "requestBody": _body({"type": "object", "required": ["sources"], "properties": {
                "sources": {"type": "array", "items": {"type": "integer"}}}}),
            "responses": {"200": _ok("Contact"), "404": _ERR, "422": _INVALID}}},
        "/tickets": {"get": {
            "summary": "tickets, newest first",
            "parameters": [_q("status", ""), _q("assignee", ""), _q("contact", ""),
                           _q("missed", "true | false"), _q("hotline", ""), _q("queue", ""),
                           *_PAGE],
            "responses": {"200": _ok(_list("Ticket")), "422": _INVALID}}},
        "/tickets/{id}": {
            "get": {"summary": "a ticket with its history", "parameters": [_p("id")],
                    "responses": {"200": _ok("TicketDetail"), "404": _ERR}},
            "patch": {"summary": "update status, assignee, priority", "parameters": [_p("id")],
                      "requestBody": _body({"type": "object", "properties": {
                          "status": {"type": "string"}, "assignee": {"type": ["string", "null"]},
                          "priority": {"type": "string"}}}),
                      "responses": {"200": _ok("Ticket"), "404": _ERR, "422": _INVALID}}},
        "/tickets/{id}/notes": {"post": {
            "summary": "add a note", "parameters": [_p("id")],
            "requestBody": _body({"type": "object", "required": ["text"], "properties": {
                "text": {"type": "string"}, "author": {"type": "string"}}}),
            "responses": {"201": _ok("TicketEvent"), "404": _ERR, "422": _INVALID}}},
        "/reports/queues": {"get": {
            "summary": "per queue, from the finished calls started in [since, until): "
                       "offered, answered, abandoned, missed, voicemail, failed; seconds in "
                       "the queue (average, maximum) and talk of the answered calls; service "
                       "level = answered within sl / (answered + abandoned after sl), and "
                       "abandon rate, in %",
            "parameters": [_q("since", "epoch seconds"), _q("until", "epoch seconds"),
                           _q("queue", "only this queue"),
                           _q("sl", "service level threshold in seconds in the queue "
                                    "(default 20; a wait of exactly sl is within)",
                              {"type": "number"})],
            "responses": {"200": _ok(_list("QueueReport")), "422": _INVALID}}},
        "/reports/agents": {"get": {
            "summary": "per agent, from the finished calls started in [since, until): queue "
                       "offers, answered, no answer, rejected (the agent call legs), average "
                       "ring from offer to answer, total and average talk",
            "parameters": [_q("since", "epoch seconds"), _q("until", "epoch seconds"),
                           _q("agent", "only this agent")],
            "responses": {"200": _ok(_list("AgentReport")), "422": _INVALID}}},
        "/config/reload": {"post": {
            "summary": "reload the YAML config; refused with the problems when invalid",
            "responses": {"200": _ok(_ANY_OBJECT), "422": {
                "description": "invalid config: file, line, key, reason per problem"}}}},
    },
}
