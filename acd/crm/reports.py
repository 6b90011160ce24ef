"""ACD reports computed from the call records: per queue (calls offered, answered,
abandoned, missed, sent to voicemail, failed; time in the queue, talk, service level,
abandon rate) and per agent (offers, answers, no answers, rejections, ring, talk), over the
finished calls (``cdrs.outcome`` set) started in ``[since, until)``.  Queries are portable
SQL (COUNT, SUM, AVG, MAX and CASE: the same on SQLite and PostgreSQL); the percentages are
worked out here from their counts.

The counts are the CDRs' outcomes (acd/crm/project.py decides them): ``abandoned`` is the
caller hanging up while queued, ``missed`` is nobody answering without the caller giving up
(the queue's max wait with no voicemail, a full queue, no agents logged in), ``voicemail``
is the call sent to a mailbox (the usual overflow).  A CDR has one queue, the last one the
call entered: a call that overflowed from one queue into another counts once, in the
second, under its final outcome.

Waits are the CDR's ``hold_seconds``: seconds in the queue, from entering it to the answer,
the hang-up, the timeout or the empty-out (the queue events' ``hold_time``/``wait``; for a
call that went through several queues, the sum).  Not ``wait_seconds``, which counts from
the call's start and so includes the IVR.

The service level is the live one's (``queues.queue.QueueStats``): calls answered within
``sl`` seconds in the queue / (calls answered + calls abandoned after more than ``sl``
seconds in the queue).  A caller who gives up within ``sl`` is not held against the queue;
calls that timed out, went to voicemail, were missed or failed are in neither count.  A
wait of exactly ``sl`` is within.  An abandoned call whose time in the queue is unknown
(no queue.abandoned event) counts as abandoned after ``sl``; an answered one, as answered
outside it.

Agents' figures come from the call legs (``cdr_legs``, role ``agent``, one per queue offer,
``party`` the agent id, ``started_at`` the offer) of those calls, and their talk from the
answered CDRs naming them (``cdrs.agent``).  Ring time is ``answered_at - started_at`` of
the answered legs whose offer time is known: a leg whose start is its answer (an agent
connection no queue.offered is on record for, see ``_legs`` in project.py) counts as an
offer answered, but has no ring time and stays out of the average.  Such a leg's party is
the device that answered, not necessarily the agent id; an agent with talk but no legs under
their id has a row with no offers.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.adapters.store.schema import cdr_legs, cdrs

from . import validate as v
from .model import AgentReport, QueueReport

DEFAULT_SL_SECONDS = 20.0
_QUEUE_OUTCOMES = ("answered", "abandoned", "missed", "voicemail", "failed")


def _count(cond: Any) -> Any:
    return sa.func.count(sa.case((cond, 1)))  # CASE without ELSE: NULL, which COUNT skips


def _when(cond: Any, col: Any) -> Any:
    return sa.case((cond, col))


def _period(since: Any, until: Any) -> list[Any]:
    c = cdrs.c
    lo, hi = v.time_range(since, until)
    conds: list[Any] = [c.outcome.is_not(None)]
    if lo is not None:
        conds.append(c.started_at >= lo)
    if hi is not None:
        conds.append(c.started_at < hi)
    return conds


def _seconds(x: Any) -> float | None:
    return None if x is None else round(float(x), 3)


def _percent(part: int, whole: int) -> float | None:
    return round(part * 100.0 / whole, 2) if whole else None


async def queue_report(engine: AsyncEngine, *, since: Any = None, until: Any = None,
                       queue: Any = None, sl: Any = None) -> list[QueueReport]:
    """One row per queue, by name; ``sl`` is the service level's threshold in seconds in
    the queue (a wait of exactly ``sl`` is within it).  Service level = answered within
    ``sl`` / (answered + abandoned after ``sl``), as the live queue metric counts it."""
    c = cdrs.c
    conds = _period(since, until)
    threshold = v.positive("sl", sl, DEFAULT_SL_SECONDS)
    q = v.text("queue", queue, 200)
    conds.append(c.queue.is_not(None) if q is None else c.queue == q)
    answered = c.outcome == "answered"
    query = (
        sa.select(
            c.queue,
            sa.func.count().label("offered"),
            *(_count(c.outcome == o).label(o) for o in _QUEUE_OUTCOMES),
            _count(sa.and_(answered, c.hold_seconds <= threshold)).label("within"),
            # abandoned after the threshold, or at an unknown time: not known to be quick
            _count(sa.and_(c.outcome == "abandoned", sa.or_(
                c.hold_seconds.is_(None), c.hold_seconds > threshold))).label("late_abandoned"),
            sa.func.avg(_when(answered, c.hold_seconds)).label("avg_wait"),
            sa.func.max(_when(answered, c.hold_seconds)).label("max_wait"),
            sa.func.avg(_when(answered, c.talk_seconds)).label("avg_talk"),
        )
        .where(*conds).group_by(c.queue).order_by(c.queue))
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    return [QueueReport(
        queue=r["queue"], offered=r["offered"], answered=r["answered"],
        abandoned=r["abandoned"], missed=r["missed"], voicemail=r["voicemail"],
        failed=r["failed"], answered_within_sl=r["within"],
        abandoned_after_sl=r["late_abandoned"], sl_seconds=threshold,
        service_level=_percent(r["within"], r["answered"] + r["late_abandoned"]),
        abandon_rate=_percent(r["abandoned"], r["offered"]),
        avg_wait_seconds=_seconds(r["avg_wait"]), max_wait_seconds=_seconds(r["max_wait"]),
        avg_talk_seconds=_seconds(r["avg_talk"])) for r in rows]


async def agent_report(engine: AsyncEngine, *, since: Any = None, until: Any = None,
                       agent: Any = None) -> list[AgentReport]:
    """One row per agent who was offered calls or answered some, by id: offers, answers,
    no answers and rejections from the agent legs, the average ring of the answered offers
    (offer to answer), the talk of the answered calls.  Two queries, merged here."""
    c, leg = cdrs.c, cdr_legs.c
    period = _period(since, until)
    a = v.text("agent", agent, 200)
    leg_answered = leg.outcome == "answered"
    legs_query = (
        sa.select(
            leg.party.label("agent"),
            sa.func.count().label("offers"),
            _count(leg_answered).label("answered"),
            _count(leg.outcome == "no_answer").label("no_answer"),
            _count(leg.outcome == "rejected").label("rejected"),
            # an answer at the leg's start: no offer time on record, so no ring time
            sa.func.avg(_when(sa.and_(leg_answered, leg.answered_at > leg.started_at),
                              leg.answered_at - leg.started_at)).label("avg_ring"),
        )
        .select_from(cdr_legs.join(cdrs, c.call_ref == leg.call_ref))
        .where(*period, leg.role == "agent",
               leg.party.is_not(None) if a is None else leg.party == a)
        .group_by(leg.party))
    talk_query = (
        sa.select(
            c.agent,
            sa.func.sum(c.talk_seconds).label("talk"),
            sa.func.avg(c.talk_seconds).label("avg_talk"),
        )
        .where(*period, c.outcome == "answered",
               c.agent.is_not(None) if a is None else c.agent == a)
        .group_by(c.agent))
    async with engine.connect() as conn:
        legs = {r["agent"]: r for r in (await conn.execute(legs_query)).mappings()}
        talks = {r["agent"]: r for r in (await conn.execute(talk_query)).mappings()}
    out = []
    for name in sorted(legs.keys() | talks.keys()):
        lr, tr = legs.get(name), talks.get(name)
        out.append(AgentReport(
            agent=name,
            offers=lr["offers"] if lr else 0, answered=lr["answered"] if lr else 0,
            no_answer=lr["no_answer"] if lr else 0, rejected=lr["rejected"] if lr else 0,
            avg_ring_seconds=_seconds(lr["avg_ring"]) if lr else None,
            talk_seconds=(_seconds(tr["talk"]) if tr else None) or 0.0,
            avg_talk_seconds=_seconds(tr["avg_talk"]) if tr else None))
    return out
