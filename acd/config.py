"""Configuration: the typed, frozen model of acd.yaml and the rules that validate it.

Owns: Config, the one object every other package reads its settings from, load_config and
the order sections are built in. The sections themselves live beside it: acd.config_platform
(sip, registrar, security, admin, store, events, crm, logging), acd.config_trunks (accounts,
trunks), acd.config_calls and acd.config_callsections (media, numbering, prompts, schedules,
blacklist, hotlines, outbound_rules, voicemail), acd.config_ivr (ivr) and acd.config_queues
(agent_statuses, feature_codes, agents, queues); their public names are re-exported here.
Parsing, line tracking and problem collection live in acd.yamlsource.

To add a section: write its dataclass and a `name(f: Fields) -> Name` function in the module
of its kind, add the field to Config and one line to `_build`. Lists are indexed from 0 in
problem keys (`accounts[0]` is the first account).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from acd import config_platform as platform
from acd import config_trunks as people
from acd.config_calls import (
    Blacklist,
    Destination,
    Hotline,
    MediaConfig,
    Numbering,
    OutboundRule,
    PromptsConfig,
    QueueRef,
    Refs,
    Schedule,
    VoicemailConfig,
)
from acd.config_callsections import call_sections
from acd.config_platform import (
    DIGEST_ALGORITHMS,
    LOG_FORMATS,
    LOG_LEVELS,
    ROLES,
    STORE_SCHEMES,
    TRANSPORTS,
    USER,
    AdminConfig,
    AdminToken,
    AuthBanConfig,
    CrmSettings,
    DigestAlgorithm,
    EventsConfig,
    HostPort,
    ListenAddress,
    LogFormat,
    LoggingConfig,
    LogLevel,
    RegistrarConfig,
    Role,
    SecurityConfig,
    SipConfig,
    SipTimers,
    StoreConfig,
    Transport,
    split_host_port,
)
from acd.config_queues import SECTIONS as _QUEUE_SECTIONS
from acd.config_queues import QueueConfig, queue_sections
from acd.config_recording import RecordingConfig, recording
from acd.config_trunks import (
    Account,
    Trunk,
    TrunkInbound,
    TrunkInboundAuth,
    TrunkOutbound,
    TrunkRegister,
    TrunkSource,
)
from acd.yamlsource import FILE, ConfigError, Node, Problem, Report, parse
from ivr.model import IvrTree
from queues.settings import AgentSettings

__all__ = [
    "DIGEST_ALGORITHMS", "LOG_FORMATS", "LOG_LEVELS", "ROLES", "STORE_SCHEMES", "TRANSPORTS",
    "Account", "AdminConfig", "AdminToken", "AgentSettings", "AuthBanConfig", "Blacklist",
    "Config", "ConfigError", "CrmSettings", "Destination", "DigestAlgorithm", "EventsConfig",
    "HostPort", "Hotline", "IvrTree", "ListenAddress", "LogFormat", "LogLevel", "LoggingConfig",
    "MediaConfig", "Numbering", "OutboundRule", "Problem", "PromptsConfig", "QueueConfig",
    "QueueRef", "RegistrarConfig", "Role", "Schedule", "SecurityConfig", "SipConfig",
    "SipTimers", "StoreConfig", "Transport", "Trunk", "TrunkInbound", "TrunkInboundAuth",
    "TrunkOutbound", "TrunkRegister", "TrunkSource", "VoicemailConfig", "changed_sections",
    "load_config", "load_config_text", "split_host_port",
]


@dataclass(frozen=True, slots=True)
class Config:
    sip: SipConfig
    node_id: str = "acd"
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    crm: CrmSettings = field(default_factory=CrmSettings)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    numbering: Numbering = field(default_factory=Numbering)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    schedules: Mapping[str, Schedule] = field(default_factory=lambda: MappingProxyType({}))
    blacklist: Blacklist = field(default_factory=Blacklist)
    hotlines: Mapping[str, Hotline] = field(default_factory=lambda: MappingProxyType({}))
    ivr: Mapping[str, IvrTree] = field(default_factory=lambda: MappingProxyType({}))
    outbound_rules: tuple[OutboundRule, ...] = ()
    voicemail: VoicemailConfig | None = None
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    accounts: tuple[Account, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    agent_statuses: tuple[str, ...] = ()
    feature_codes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    agents: Mapping[str, AgentSettings] = field(default_factory=lambda: MappingProxyType({}))
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: MappingProxyType({}))
    # Queues named by hotlines and IVR nodes (each checked against `queues`): the names in
    # file order without repeats, and every place one is named.
    referenced_queues: tuple[str, ...] = ()
    queue_refs: tuple[QueueRef, ...] = ()
    source_path: Path | None = None  # None when loaded from text
    digest: str = ""  # sha256 hex of the file bytes


_SOURCE_FIELDS = ("source_path", "digest", "referenced_queues", "queue_refs")


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """Top-level sections that differ, in file order, for the reload log line."""
    return tuple(f.name for f in fields(Config) if f.name not in _SOURCE_FIELDS
                 and getattr(old, f.name) != getattr(new, f.name))


# -- loading ------------------------------------------------------------------------------


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML file; raises ConfigError listing every problem.

    Relative paths in it (prompts.dir) are taken from the file's directory.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, FILE, f"cannot read: {exc.strerror or exc}")]
                          ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(str(path), line, FILE, "is not valid UTF-8")]) from None
    return _load(text, str(path), Path(path), hashlib.sha256(data).hexdigest(),
                 Path(path).parent)


def load_config_text(text: str, filename: str = "<text>", *,
                     base_dir: str | Path = ".") -> Config:
    """Validate YAML text as if read from `filename` (which only labels problems).

    base_dir: where relative paths in it (prompts.dir) are taken from.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return _load(text, filename, None, digest, Path(base_dir))


def _load(text: str, filename: str, source_path: Path | None, digest: str,
          base_dir: Path) -> Config:
    report = Report(filename)
    raw = parse(text, report)
    report.raise_if_any()
    config = _build(Node.root(raw, report), source_path, digest, base_dir)
    report.raise_if_any()
    return config


_CALL_SECTIONS = ("media", "numbering", "prompts", "schedules", "blacklist", "hotlines",
                  "ivr", "outbound_rules", "voicemail")


def _build(root: Node, source_path: Path | None, digest: str, base_dir: Path) -> Config:
    f = root.fields(("node_id", "sip", "registrar", "security", "admin", "store", "events",
                     "crm", "logging", *_CALL_SECTIONS, "recording", "accounts", "trunks",
                     *_QUEUE_SECTIONS))
    accounts = people.accounts(f.opt_list("accounts"))
    trunks = people.trunks(f.opt_list("trunks"))
    refs = Refs(users={a.user for a in accounts},
                hotline_numbers={n for t in trunks for n in t.hotlines},
                trunks={t.name for t in trunks},
                outbound_trunks={t.name for t in trunks if t.outbound is not None})
    return Config(
        **call_sections(f, refs, base_dir),
        **queue_sections(f, refs),  # after call_sections: reads the names it puts in refs
        node_id=f.opt_str("node_id", "acd", pattern=USER,
                          rule="must contain only letters, digits, '.', '_' and '-'"),
        sip=platform.sip(f.req_section("sip", ("listen", "domain", "realm", "user_agent", "timers",
                                       "max_message_size", "max_headers"))),
        registrar=platform.registrar(f.section("registrar", ("default_expires", "min_expires",
                                                     "max_expires", "qualify_interval"))),
        security=platform.security(f.section("security", ("nonce_lifetime", "auth_ban",
                                                  "trusted_networks", "digest_algorithms"))),
        admin=platform.admin(f.section("admin", ("listen", "tokens"))),
        store=platform.store(f.section("store", ("url",))),
        events=platform.events(f.section("events", ("bus", "stream", "maxlen"))),
        crm=platform.crm(f.section("crm", ("event_retention_days",))),
        logging=platform.logging(f.section("logging", ("level", "format"))),
        recording=recording(f.section("recording", ("dir", "format", "template",
                                                    "retention_days", "default"))),
        accounts=accounts,
        trunks=trunks,
        source_path=source_path,
        digest=digest,
    )
