"""ACD core, sans-IO: agents and their three state layers, queued callers, distribution
strategies, and the distributor that turns the engine's inputs into offers, cancels, bridges,
overflows and events.

    queues.settings     frozen QueueSettings / Member / AgentSettings the config loader builds
    queues.distributor  Distributor: the inputs (take `now`) and queries
    queues.strategies   Strategy, the registry (`register`) and the built-in strategies
    queues.outputs      the commands and events the distributor returns
    queues.agent        an agent's presence / availability / occupancy, counters, history
    queues.queue        a queue's runtime state, statistics and estimated wait
    queues.callers      callers, offers, and the heaps / position index they are kept in
    queues.routing      routing decisions, deadlines, offer and caller endings
    queues.membership   agents and queues changing while calls flow
    queues.deadlines    the deadline heap behind `next_deadline` / `tick`
"""

from queues.distributor import FAILURE_REASONS, Distributor
from queues.outputs import (
    CancelOffer,
    Connect,
    JoinResult,
    Offer,
    Output,
    Overflow,
    QueueEvent,
    RejectAnswer,
    StatusChange,
)
from queues.settings import AgentSettings, AnnounceSettings, Member, QueueSettings
from queues.strategies import Candidate, Context, Strategy, register, strategy_names

__all__ = [
    "FAILURE_REASONS", "AgentSettings", "AnnounceSettings", "Candidate", "CancelOffer",
    "Connect", "Context", "Distributor", "JoinResult", "Member", "Offer", "Output", "Overflow",
    "QueueEvent", "QueueSettings", "RejectAnswer", "StatusChange", "Strategy", "register",
    "strategy_names",
]
