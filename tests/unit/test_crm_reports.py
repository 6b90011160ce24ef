"""The ACD reports computed from the CDRs and their legs, over SQLite and PostgreSQL: per
queue (offered, answered, abandoned, missed, voicemail, time in the queue, talk, service
level as the live queue metric counts it, abandon rate) and per agent (offers, answers, no
answers, rejections, ring from offer to answer, talk), with their time range and filters;
and the HTTP routes answering them, with the 422s their query parameters can earn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.api.http import AdminApi
from acd.api.openapi import OPENAPI
from acd.config_platform import AdminToken
from acd.crm import AgentReport, CrmError, CrmService, QueueReport
from acd.events import Event
from tests.unit.test_crm import CALLER, HOTLINE, T0, Script, backend, crm, feed, store

__all__ = ["backend", "crm", "store"]  # fixtures, imported for pytest

READ_TOKEN = "read-token"


IVR = 5.0  # seconds each queued call spends in the IVR before entering its queue


def _q(queue: str, ref: str) -> dict[str, Any]:
    return {"queue": queue, "caller": ref, "hotline": HOTLINE, "from": CALLER}


def offer(sc: Script, ref: str, queue: str, agent: str, offer_id: int, at: float,
          end: str, end_at: float) -> list[Event]:
    """An offer to ``agent`` at ``at`` that ends at ``end_at`` with queue.ring_``end``."""
    q = _q(queue, ref)
    return [sc.ev("queue.offered", ref, at, agent=agent, offer_id=offer_id, deadline=0, **q),
            sc.ev(f"queue.ring_{end}", ref, end_at, agent=agent, offer_id=offer_id,
                  reason=end, **q)]


def answered(sc: Script, ref: str, t: float, *, queue: str, agent: str, hold: float,
             ring: float, talk: float, before: tuple[tuple[str, str, float, float], ...] = (),
             ) -> list[Event]:
    """IVR seconds in the IVR, ``hold`` in the queue, answered by ``agent`` ``ring``
    seconds after its offer; ``before``: earlier offers (agent, end, at, end_at) of
    ``t``."""
    q = _q(queue, ref)
    entered, answer = t + IVR, t + IVR + hold
    evs = [sc.started(ref, t),
           sc.ev("queue.entered", ref, entered, position=1, priority=0, **q)]
    for n, (who, end, at, end_at) in enumerate(before, start=2):
        evs += offer(sc, ref, queue, who, n, t + at, end, t + end_at)
    return [
        *evs,
        sc.ev("queue.offered", ref, answer - ring, agent=agent, offer_id=1, deadline=0, **q),
        sc.ev("queue.connected", ref, answer, agent=agent, offer_id=1, hold_time=hold, **q),
        sc.ev("call.connected", ref, answer, party=agent, trunk=None, agent=agent,
              queue=queue),
        sc.ended(ref, answer + talk, t, agent=agent, queue=queue, talk=talk,
                 ring=answer - t),
    ]


def abandoned(sc: Script, ref: str, t: float, *, queue: str, hold: float,
              before: tuple[tuple[str, str, float, float], ...] = ()) -> list[Event]:
    q = _q(queue, ref)
    evs = [sc.started(ref, t),
           sc.ev("queue.entered", ref, t + IVR, position=2, priority=0, **q)]
    for n, (who, end, at, end_at) in enumerate(before, start=1):
        evs += offer(sc, ref, queue, who, n, t + at, end, t + end_at)
    return [*evs,
            sc.ev("queue.abandoned", ref, t + IVR + hold, wait=hold, position=1, **q),
            sc.ended(ref, t + IVR + hold, t, queue=queue)]


def timed_out(sc: Script, ref: str, t: float, *, queue: str) -> list[Event]:
    """The queue's max wait, then a goodbye prompt and the engine hangs up."""
    q = _q(queue, ref)
    return [sc.started(ref, t),
            sc.ev("queue.entered", ref, t + IVR, position=1, priority=0, **q),
            sc.ev("queue.timeout", ref, t + IVR + 120, wait=120.0, position=1, **q),
            sc.ended(ref, t + IVR + 125, t, queue=queue, reason="played", by="engine")]


async def contact_center_day(crm: CrmService) -> None:
    """Every queued call spends IVR (5) seconds in the IVR first.

    sales: s1 answered by 1001 after 10 s in the queue (ring 4); s2 after exactly 20 s,
    1001 not answering and 1003 rejecting before 1002 answers (ring 6); s3 by 1001 after
    45 s (ring 5); s4 abandoned after 40 s; s7 abandoned after 8 s while 1003's offer rang
    (canceled); s5 timed out to voicemail; s6 timed out (missed).
    support: p1 answered by 1002 after 5 s (ring 2); p2 abandoned after 30 s.
    Plus calls no report counts: no queue, still up, outbound."""
    sc = Script()
    for evs in (
        answered(sc, "s1", T0, queue="sales", agent="1001", hold=10, ring=4, talk=60),
        answered(sc, "p1", T0 + 50, queue="support", agent="1002", hold=5, ring=2, talk=121),
        answered(sc, "s2", T0 + 100, queue="sales", agent="1002", hold=20, ring=6, talk=30,
                 before=(("1001", "noanswer", 5, 17), ("1003", "rejected", 17.5, 18))),
        abandoned(sc, "p2", T0 + 150, queue="support", hold=30),
        answered(sc, "s3", T0 + 200, queue="sales", agent="1001", hold=45, ring=5, talk=90),
        abandoned(sc, "s4", T0 + 300, queue="sales", hold=40),
        abandoned(sc, "s7", T0 + 350, queue="sales", hold=8,
                  before=(("1003", "canceled", 6, 13),)),
        sc.timeout_to_voicemail("s5", t=T0 + 400),
        timed_out(sc, "s6", T0 + 500, queue="sales"),
        sc.out_of_hours("x1", t=T0 + 600),  # no queue
        answered(sc, "live", T0 + 700, queue="sales", agent="1001", hold=3, ring=1,
                 talk=9)[:-1],
        sc.outbound("x2", "+84987654321", t=T0 + 800),  # no queue, no agent
    ):
        await feed(crm, evs)


def _row(r: QueueReport | AgentReport) -> dict[str, Any]:
    return {k: getattr(r, k) for k in r.__slots__}


def _agent(agent: str, offers: int, answered: int, no_answer: int, rejected: int,
           ring: float | None, talk: float, avg_talk: float | None) -> dict[str, Any]:
    return {"agent": agent, "offers": offers, "answered": answered, "no_answer": no_answer,
            "rejected": rejected, "avg_ring_seconds": ring, "talk_seconds": talk,
            "avg_talk_seconds": avg_talk}


async def test_queue_report_counts_outcomes_waits_and_rates(crm: CrmService) -> None:
    await contact_center_day(crm)
    assert {(await crm.get_cdr(r)).outcome for r in ("s5", "s6")} == {"voicemail", "missed"}
    # s2: 20 s in the queue but 25 s since the call started: the IVR is not queue time
    s2 = await crm.get_cdr("s2")
    assert (s2.hold_seconds, s2.wait_seconds) == (20.0, 25.0)
    sales, support = await crm.queue_report()
    assert _row(sales) == {
        "queue": "sales", "offered": 7, "answered": 3, "abandoned": 2, "missed": 1,
        "voicemail": 1, "failed": 0,
        "answered_within_sl": 2, "abandoned_after_sl": 1,  # 10 s and exactly 20 s: within
        "sl_seconds": 20.0,
        # 2 / (3 answered + s4 abandoned after 40 s; s7 gave up within 20 s)
        "service_level": 50.0, "abandon_rate": 28.57,
        "avg_wait_seconds": 25.0, "max_wait_seconds": 45.0, "avg_talk_seconds": 60.0}
    assert _row(support) == {
        "queue": "support", "offered": 2, "answered": 1, "abandoned": 1, "missed": 0,
        "voicemail": 0, "failed": 0, "answered_within_sl": 1, "abandoned_after_sl": 1,
        "sl_seconds": 20.0, "service_level": 50.0, "abandon_rate": 50.0,
        "avg_wait_seconds": 5.0, "max_wait_seconds": 5.0, "avg_talk_seconds": 121.0}
    # sl: answered within it, and abandoned after it (s4 after 40 s, s7 after 8 s)
    for sl, within, late_abandoned in ((45, 3, 0), ("19.999", 1, 1), (9.5, 0, 1),
                                       ("20", 2, 1), (8, 0, 1), ("7.999", 0, 2)):
        (sales,) = await crm.queue_report(queue="sales", sl=sl)
        assert (sales.answered_within_sl, sales.sl_seconds) == (within, float(sl))
        assert sales.abandoned_after_sl == late_abandoned
        assert sales.service_level == round(within * 100 / (3 + late_abandoned), 2)


async def test_queue_report_range_and_filter(crm: CrmService) -> None:
    await contact_center_day(crm)
    # [T0+100, T0+300): s2, p2, s3; s4 starts at the end, which is not in it
    sales, support = await crm.queue_report(since=T0 + 100, until=str(T0 + 300))
    assert (sales.offered, sales.answered, sales.abandoned) == (2, 2, 0)
    assert (sales.service_level, sales.avg_wait_seconds, sales.max_wait_seconds) == \
        (50.0, 32.5, 45.0)
    assert _row(support) == {
        "queue": "support", "offered": 1, "answered": 0, "abandoned": 1, "missed": 0,
        "voicemail": 0, "failed": 0, "answered_within_sl": 0, "abandoned_after_sl": 1,
        "sl_seconds": 20.0, "service_level": 0.0, "abandon_rate": 100.0,
        "avg_wait_seconds": None, "max_wait_seconds": None, "avg_talk_seconds": None}
    (sales,) = await crm.queue_report(since=T0 + 350, until=T0 + 400)  # s7 only
    assert (sales.offered, sales.abandoned, sales.service_level) == (1, 1, None)
    assert [r.queue for r in await crm.queue_report(since=T0 + 400)] == ["sales"]
    assert [r.offered for r in await crm.queue_report(until=T0 + 100)] == [1, 1]
    assert await crm.queue_report(since=T0 + 10_000) == []
    (only,) = await crm.queue_report(queue=" support ")
    assert only.queue == "support" and only.offered == 2
    assert await crm.queue_report(queue="nope") == []


async def test_agent_report(crm: CrmService) -> None:
    await contact_center_day(crm)
    assert [_row(r) for r in await crm.agent_report()] == [
        _agent("1001", 3, 2, 1, 0, 4.5, 150.0, 75.0),  # s1, s3 (rings 4, 5); s2 rang out
        _agent("1002", 2, 2, 0, 0, 4.0, 151.0, 75.5),  # p1, s2 (rings 2, 6)
        _agent("1003", 2, 0, 0, 1, None, 0.0, None)]  # s2 rejected, s7 canceled
    (a,) = await crm.agent_report(agent="1001", since=T0 + 100)
    assert _row(a) == _agent("1001", 2, 1, 1, 0, 5.0, 90.0, 90.0)
    # p1, s2, p2: offered but nothing answered still makes a row
    assert [_row(r) for r in await crm.agent_report(since=T0 + 40, until=T0 + 200)] == [
        _agent("1001", 1, 0, 1, 0, None, 0.0, None),
        _agent("1002", 2, 2, 0, 0, 4.0, 151.0, 75.5),
        _agent("1003", 1, 0, 0, 1, None, 0.0, None)]
    assert [r.agent for r in await crm.agent_report(agent=" 1003 ")] == ["1003"]
    assert await crm.agent_report(agent="1004") == []
    assert await crm.agent_report(since=T0 + 10_000) == []


async def test_reports_with_times_the_events_do_not_give(crm: CrmService) -> None:
    """A connection with no queue offer on record (its queue.offered and queue.connected
    lost) is an answered leg with no ring time, and an answered call with no time in the
    queue; an abandon with no queue.abandoned has no time in the queue either, so it is not
    known to be within the service level."""
    sc = Script()
    q = _q("support", "c1")
    await feed(crm, [
        sc.started("c1", T0),
        sc.ev("queue.entered", "c1", T0 + IVR, position=1, priority=0, **q),
        sc.ev("call.connected", "c1", T0 + 12, party="1004", trunk=None, agent="1004",
              queue="support"),
        sc.ended("c1", T0 + 42, T0, agent="1004", queue="support", talk=30, ring=12)])
    await feed(crm, answered(sc, "c2", T0 + 100, queue="support", agent="1004", hold=10,
                             ring=3, talk=50))
    await feed(crm, [sc.started("c3", T0 + 200),
                     sc.ev("queue.entered", "c3", T0 + 200 + IVR, position=1, priority=0,
                           **_q("support", "c3")),
                     sc.ended("c3", T0 + 210, T0 + 200, queue="support")])
    assert [(c.call_ref, c.outcome, c.hold_seconds) for c in
            [await crm.get_cdr(r) for r in ("c1", "c2", "c3")]] == \
        [("c1", "answered", None), ("c2", "answered", 10.0), ("c3", "abandoned", None)]
    (support,) = await crm.queue_report()
    assert (support.offered, support.answered, support.abandoned,
            support.answered_within_sl) == (3, 2, 1, 1)
    assert (support.service_level, support.avg_wait_seconds, support.max_wait_seconds) == \
        (33.33, 10.0, 10.0)  # 1 / (2 answered + 1 abandoned at an unknown time)
    (agent,) = await crm.agent_report()
    assert _row(agent) == _agent("1004", 2, 2, 0, 0, 3.0, 80.0, 40.0)  # ring: c2's only


def test_report_schemas_document_every_field() -> None:
    schemas = OPENAPI["components"]["schemas"]
    for cls in (QueueReport, AgentReport):
        schema = schemas[cls.__name__]
        assert list(schema["properties"]) == schema["required"] == list(cls.__slots__)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sl": 0}, "sl"), ({"sl": "-5"}, "sl"), ({"sl": "abc"}, "sl"), ({"sl": "nan"}, "sl"),
    ({"sl": "inf"}, "sl"), ({"sl": True}, "sl"), ({"since": "yesterday"}, "since"),
    ({"since": 10, "until": 5}, "until"), ({"queue": "x" * 201}, "queue")])
async def test_queue_report_validation(crm: CrmService, kwargs: dict[str, Any],
                                       field: str) -> None:
    with pytest.raises(CrmError) as err:
        await crm.queue_report(**kwargs)
    assert err.value.field == field


# --- HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def client(crm: CrmService) -> AsyncIterator[TestClient[Any, Any]]:
    daemon = SimpleNamespace(crm=crm, config=SimpleNamespace(
        admin=SimpleNamespace(tokens=(AdminToken(READ_TOKEN, "read"),))))
    api = AdminApi(daemon)  # type: ignore[arg-type]
    async with TestClient(TestServer(api.app)) as c:
        yield c


async def _get(client: TestClient[Any, Any], path: str, **params: Any) -> tuple[int, Any]:
    resp = await client.get(path, params=params,
                            headers={"Authorization": f"Bearer {READ_TOKEN}"})
    return resp.status, await resp.json()


async def test_report_routes_answer_lists_with_a_read_token(
        crm: CrmService, client: TestClient[Any, Any]) -> None:
    await contact_center_day(crm)
    status, body = await _get(client, "/reports/queues", sl="45", queue="sales")
    assert status == 200 and body["next"] is None
    assert [(q["queue"], q["offered"], q["answered_within_sl"], q["service_level"])
            for q in body["items"]] == [("sales", 7, 3, 100.0)]
    status, body = await _get(client, "/reports/agents", since=str(T0 + 100))
    assert status == 200 and body == {"next": None, "items": [
        _agent("1001", 2, 1, 1, 0, 5.0, 90.0, 90.0),
        _agent("1002", 1, 1, 0, 0, 6.0, 30.0, 30.0),
        _agent("1003", 2, 0, 0, 1, None, 0.0, None)]}
    assert (await client.get("/reports/queues")).status == 401


@pytest.mark.parametrize(("path", "params", "field", "reason"), [
    ("/reports/queues", {"since": "20", "until": "10"}, "until", "must not be before since"),
    ("/reports/queues", {"sl": "0"}, "sl", "must be a finite number above 0"),
    ("/reports/queues", {"sl": "-1"}, "sl", "must be a finite number above 0"),
    ("/reports/queues", {"sl": "twenty"}, "sl", "must be a positive number"),
    ("/reports/queues", {"until": "soon"}, "until", "must be a time in epoch seconds"),
    ("/reports/agents", {"since": "x"}, "since", "must be a time in epoch seconds"),
    ("/reports/agents", {"since": "5", "until": "4"}, "until", "must not be before since")])
async def test_report_routes_refuse_bad_parameters(client: TestClient[Any, Any], path: str,
                                                   params: dict[str, str], field: str,
                                                   reason: str) -> None:
    status, body = await _get(client, path, **params)
    assert (status, body) == (422, {"error": "invalid",
                                    "detail": {"field": field, "reason": reason}})
