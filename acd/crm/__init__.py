"""CRM on top of the engine's events: call detail records and legs, recordings, contacts,
tickets with their history, agent status history, and queue and agent reports.

``CrmService(store)`` consumes events (``handle``) and answers the HTTP layer's queries;
``consume_inproc(bus, service)`` and ``redis_consumer(service, url, stream)`` feed it.
"""

from .errors import CrmError, NotFound
from .ingest import CrmConfig
from .model import (
    AgentReport,
    AgentStatusChange,
    Cdr,
    CdrLeg,
    Contact,
    QueueReport,
    Recording,
    Ticket,
    TicketDetail,
    TicketEvent,
)
from .retention import Pruned
from .service import CrmService, CrmStats
from .validate import UNSET
from .wiring import InprocConsumer, consume_inproc, redis_consumer

__all__ = [
    "UNSET",
    "AgentReport",
    "AgentStatusChange",
    "Cdr",
    "CdrLeg",
    "Contact",
    "CrmConfig",
    "CrmError",
    "CrmService",
    "CrmStats",
    "InprocConsumer",
    "NotFound",
    "Pruned",
    "QueueReport",
    "Recording",
    "Ticket",
    "TicketDetail",
    "TicketEvent",
    "consume_inproc",
    "redis_consumer",
]
