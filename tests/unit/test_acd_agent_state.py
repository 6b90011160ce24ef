"""Agents' availability survives a restart: every change (admin API, feature code, autopause,
an agent a reload adds) is submitted to the store without waiting for it, and
`QueueService.restore_agent_states` puts the stored statuses back at start. The start state
itself (every configured agent available) and the restore write nothing; presence and
occupancy are never stored."""

from __future__ import annotations

import structlog

from acd.adapters.store import AgentStateRow, UpsertAgentState
from acd.queueing import RESTORED, START_STATUS

from .acdfakes import AgentPhone, nothing_left, queue_call
from .callfakes import CallRig, config_from, demo_with
from .test_acd_agents import dial_code


def agent_ops(rig: CallRig) -> list[UpsertAgentState]:
    return [op for op in rig.ops if isinstance(op, UpsertAgentState)]


def status_events(rig: CallRig, agent: str) -> list[tuple[str, str, str]]:
    return [(e.data["old"], e.data["new"], e.data["reason"])
            for e in rig.events_of("agent.status_changed")
            if e.data["agent"] == agent and e.data["layer"] == "availability"]


def row(agent: str, status: str, reason: str | None = "api", at: float = 1.0) -> AgentStateRow:
    return AgentStateRow(agent=agent, status=status, reason=reason, updated_at=at)


# -- every availability change is submitted -----------------------------------------------------


def test_start_state_writes_nothing_and_an_api_change_is_submitted() -> None:
    rig = CallRig()
    assert START_STATUS == "available"
    assert {rig.engine.queues.dist.agent(a).availability
            for a in rig.engine.queues.dist.agents()} == {"available"}
    assert agent_ops(rig) == []  # no row means the start status

    rig.engine.queues.set_status("1001", "lunch", reason="api")
    rig.clock.advance(5.0)
    rig.engine.queues.set_status("1001", "available", reason="api")
    rig.engine.queues.set_status("1001", "available", reason="api")  # no change: no op
    wall = rig.clock.wall()
    assert agent_ops(rig) == [
        UpsertAgentState(row("1001", "lunch", "api", wall - 5.0)),
        UpsertAgentState(row("1001", "available", "api", wall)),
    ]
    assert {op.key for op in agent_ops(rig)} == {("agent_state", "1001")}  # coalesced by agent


def test_feature_codes_are_submitted() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    ops_before = len(rig.ops)
    dial_code(rig, a1, "*22", "break")
    (op,) = agent_ops(rig)
    assert (op.row.agent, op.row.status, op.row.reason) == ("1001", "break", "feature code *22")
    # registering, ringing and the confirmation call (presence, occupancy) are not stored
    assert all(not isinstance(o, UpsertAgentState) for o in rig.ops[:ops_before])
    dial_code(rig, a1, "*21", "available")
    assert [(o.row.status, o.row.reason) for o in agent_ops(rig)] == [
        ("break", "feature code *22"), ("available", "feature code *21")]
    nothing_left(rig)


def test_autopause_is_an_availability_change_and_is_submitted() -> None:
    rig = CallRig(demo_with(("    retry_delay: 2\n", "    retry_delay: 2\n    autopause_after: 1\n")))
    a1 = AgentPhone(rig, "1001", 5071)
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.refuse(603)
    assert rig.engine.queues.dist.agent("1001").availability == "auto_paused"
    (op,) = agent_ops(rig)
    assert (op.row.agent, op.row.status, op.row.reason) == ("1001", "auto_paused",
                                                            "1 unanswered")
    c.bye()
    rig.advance(10.0)
    nothing_left(rig)


def test_an_agent_a_reload_adds_has_its_start_status_stored() -> None:
    rig = CallRig(demo_with(('  "1004": {name: Agent 1004, devices: ["1004"]}\n', "")))
    assert agent_ops(rig) == []
    rig.engine.apply_config(config_from(demo_with()))
    (op,) = agent_ops(rig)
    assert (op.row.agent, op.row.status, op.row.reason) == ("1004", "available", "configured")


# -- restore at start ---------------------------------------------------------------------------


def test_restore_applies_stored_statuses_through_the_one_status_path() -> None:
    rig = CallRig()
    a1, a2 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)
    restored = rig.engine.queues.restore_agent_states([
        row("1001", "lunch"), row("1002", "available"), row("1003", "logged_out"),
        row("1004", "auto_paused", "3 unanswered")])
    assert restored == 3  # 1002 was available already
    dist = rig.engine.queues.dist
    assert [dist.agent(a).availability for a in ("1001", "1002", "1003", "1004")] == [
        "lunch", "available", "logged_out", "auto_paused"]
    assert status_events(rig, "1001")[-1] == ("available", "lunch", RESTORED)
    assert status_events(rig, "1002") == [("logged_out", "available", "configured")]
    # the rows already say so: the restore writes nothing back
    assert agent_ops(rig) == []
    # presence is the phones' own: restoring a status does not change it
    assert dist.agent("1001").registered == ("1001",)
    agents = {a["id"]: a for a in rig.engine.queues.snapshot_agents()}
    assert (agents["1001"]["status"], agents["1002"]["status"]) == ("lunch", "available")

    # 1001 is on lunch after the restart: the queue call goes to 1002 only, and a second
    # caller waits for 1002 rather than ringing 1001
    c, ep = queue_call(rig)
    (offer,) = a2.poll()
    assert a1.poll() == []
    offer.answer()
    assert ep.bridged_to is offer.endpoint(rig)
    c2, ep2 = queue_call(rig)
    rig.advance(30.0)
    assert a1.poll() == [] and a2.poll() == []
    assert ep2.playing is not None
    c2.bye()
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_restore_ignores_unknown_agents_and_falls_back_for_statuses_no_longer_configured(
) -> None:
    # "training" is no longer a not-available reason in this config
    rig = CallRig(demo_with(("agent_statuses: [lunch, meeting, training, break]",
                             "agent_statuses: [lunch, meeting, break]")))
    with structlog.testing.capture_logs() as logs:
        restored = rig.engine.queues.restore_agent_states([
            row("1001", "training"), row("9999", "lunch"), row("1002", "meeting")])
    assert restored == 1
    dist = rig.engine.queues.dist
    assert (dist.agent("1001").availability, dist.agent("1002").availability) == (
        START_STATUS, "meeting")
    assert "9999" not in dist.agents()
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (warning["agent"], warning["status"], warning["start_status"]) == (
        "1001", "training", "available")
    assert status_events(rig, "1001") == [("logged_out", "available", "configured")]
    # 1001's row now says what the agent is; 9999's row is left alone (no op for it)
    (op,) = agent_ops(rig)
    assert (op.row.agent, op.row.status) == ("1001", START_STATUS)


def test_changes_after_a_restore_are_submitted_again() -> None:
    rig = CallRig()
    rig.engine.queues.restore_agent_states([row("1001", "break")])
    assert agent_ops(rig) == []
    rig.engine.queues.set_status("1001", "available", reason="api")
    (op,) = agent_ops(rig)
    assert (op.row.agent, op.row.status, op.row.reason) == ("1001", "available", "api")
