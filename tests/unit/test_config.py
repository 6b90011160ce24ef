"""Tests of acd.config: the demo config, every rule's exact problem text and line, fuzzing."""

from __future__ import annotations

import hashlib
import ipaddress
import textwrap
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.config import (
    Config,
    ConfigError,
    HostPort,
    ListenAddress,
    Problem,
    TrunkSource,
    changed_sections,
    load_config,
    load_config_text,
)
from acd.yamlsource import Fields, Node, Report, parse

DEMO = Path(__file__).resolve().parents[2] / "config" / "acd.yaml"

# Lines 1-3; snippets appended to it start at line 4.
BASE = "sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: acd.local\n"


def load(text: str) -> Config:
    return load_config_text(textwrap.dedent(text), "t.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [str(p) for p in info.value.problems]


def base(snippet: str) -> str:
    return BASE + textwrap.dedent(snippet)


# -- the demo config ----------------------------------------------------------------------


def test_demo_config_loads_with_expected_values() -> None:
    c = load_config(DEMO)
    assert c.node_id == "acd-demo"
    assert c.sip.listen == (
        ListenAddress("udp", "127.0.0.1", 5060), ListenAddress("tcp", "127.0.0.1", 5060),
        ListenAddress("udp", "::1", 5060), ListenAddress("tcp", "::1", 5060),
    )
    assert (c.sip.domain, c.sip.realm, c.sip.user_agent) == ("acd.local", "acd.local",
                                                              "acd-engine")
    assert (c.sip.timers.t1, c.sip.timers.t2, c.sip.timers.t4) == (0.5, 4.0, 5.0)
    assert (c.sip.max_message_size, c.sip.max_headers) == (65535, 256)
    assert (c.registrar.default_expires, c.registrar.min_expires, c.registrar.max_expires,
            c.registrar.qualify_interval) == (3600, 60, 7200, 30)
    assert c.security.nonce_lifetime == 300
    assert (c.security.auth_ban.max_failures, c.security.auth_ban.window,
            c.security.auth_ban.ban_time) == (20, 60, 600)
    assert c.security.trusted_networks == (ipaddress.ip_network("127.0.0.0/8"),
                                           ipaddress.ip_network("::1/128"))
    # the demo offers MD5 only: libre-based phones give up on a SHA-256 challenge
    assert c.security.digest_algorithms == ("MD5",)
    assert c.admin.listen == HostPort("127.0.0.1", 8080)
    assert [(t.token, t.role) for t in c.admin.tokens] == [("demo-admin-token", "admin")]
    assert c.store.url == "sqlite+aiosqlite:///var/acd.sqlite3"
    assert c.events.bus == "inproc"
    assert (c.logging.level, c.logging.format) == ("info", "json")
    assert [(a.user, a.password, a.display_name, a.max_contacts) for a in c.accounts] == [
        (f"100{i}", f"pass100{i}", f"Agent 100{i}", 5) for i in range(1, 5)]
    assert all(a.ha1 is None and a.allowed_networks == c.security.trusted_networks
               for a in c.accounts)
    [trunk] = c.trunks
    assert trunk.name == "demo-trunk"
    assert trunk.inbound.sources == (TrunkSource(ipaddress.ip_network("127.0.0.1/32"), 5080),)
    assert trunk.inbound.auth is None
    assert trunk.outbound is not None
    assert (trunk.outbound.proxy, trunk.outbound.transport) == (HostPort("127.0.0.1", 5080),
                                                                "udp")
    assert trunk.options_ping == 0  # off in the demo: its provider is a SIPp test peer
    assert trunk.hotlines == ("19001000", "19002000", "19003000")


def test_demo_config_records_source_and_digest() -> None:
    c = load_config(str(DEMO))
    assert c.source_path == DEMO
    assert c.digest == hashlib.sha256(DEMO.read_bytes()).hexdigest()


def test_config_is_frozen_and_repr_hides_secrets() -> None:
    c = load_config(DEMO)
    with pytest.raises(FrozenInstanceError):
        c.node_id = "x"  # type: ignore[misc]
    assert "pass1001" not in repr(c)
    assert "demo-admin-token" not in repr(c)


def test_minimal_config_takes_defaults() -> None:
    c = load(BASE)
    assert c.node_id == "acd"
    assert c.sip.realm == "acd.local"
    assert c.registrar.default_expires == 3600
    assert c.admin.listen == HostPort("127.0.0.1", 8080)
    assert c.admin.tokens == ()
    assert c.store.url.startswith("sqlite+aiosqlite://")
    assert (c.events.bus, c.events.stream, c.events.maxlen) == ("inproc", "acd:events", 100000)
    assert c.accounts == () and c.trunks == ()
    assert c.source_path is None
    assert c.digest == hashlib.sha256(BASE.encode()).hexdigest()


def test_changed_sections_names_what_differs() -> None:
    text = DEMO.read_text()
    old = load_config_text(text, base_dir=DEMO.parent)
    new = load_config_text(text.replace("level: info", "level: debug")
                           .replace("max_seconds: 120", "max_seconds: 60")
                           .replace("options_ping: 0", "options_ping: 10"),
                           base_dir=DEMO.parent)
    assert changed_sections(old, new) == ("logging", "voicemail", "trunks")
    assert changed_sections(old, old) == ()


# -- problem reporting --------------------------------------------------------------------


def test_problem_and_error_format() -> None:
    a = Problem("a.yaml", 3, "sip.timers.t1", "must be > 0, got 0")
    b = Problem("a.yaml", 9, "node_id", "x")
    assert str(a) == "a.yaml:3: sip.timers.t1: must be > 0, got 0"
    assert str(ConfigError([a, b])) == ("a.yaml:3: sip.timers.t1: must be > 0, got 0\n"
                                        "a.yaml:9: node_id: x")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:1: (file): cannot read: No such file or directory"


def test_invalid_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(BASE.encode() + b"node_id: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:4: (file): is not valid UTF-8"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_config(path).sip.domain == "acd.local"


def test_yaml_syntax_error_has_its_line() -> None:
    assert errors(base("""\
        node_id: a
        logging:
          level: info: debug
        """)) == ["t.yaml:6: (yaml): mapping values are not allowed here"]


def test_unclosed_flow_list_is_a_syntax_error() -> None:
    assert errors("sip:\n  listen: [udp:127.0.0.1:5060\n") == [
        "t.yaml:3: (yaml): expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)"]


def test_several_documents_are_an_error() -> None:
    assert errors(BASE + "---\nnode_id: x\n") == [
        "t.yaml:4: (yaml): but found another document (expected a single document "
        "in the stream)"]


def test_all_problems_are_reported_in_file_order() -> None:
    assert errors(base("""\
        registrar:
          min_expires: 0
        logging:
          level: loud
        accounts:
          - user: "1001"
          - user: "1001"
            password: x
        nodeid: a
        """)) == [
        "t.yaml:5: registrar.min_expires: must be >= 1, got 0",
        "t.yaml:7: logging.level: must be one of debug, info, warning, error, got 'loud'",
        "t.yaml:9: accounts[0]: needs a password or an ha1",
        "t.yaml:10: accounts[1].user: duplicate user '1001', first at accounts[0].user (line 9)",
        "t.yaml:12: nodeid: unknown key, did you mean 'node_id'?",
    ]


def test_unknown_key_without_close_match_lists_the_keys() -> None:
    assert errors(base("logging:\n  colour: red\n")) == [
        "t.yaml:5: logging.colour: unknown key (expected one of: level, format)"]


def test_duplicate_key_is_reported_at_the_second() -> None:
    assert errors(base("node_id: a\nnode_id: b\n")) == [
        "t.yaml:5: node_id: duplicate key, first at line 4"]


def test_empty_document_needs_sip() -> None:
    assert errors("# nothing\n") == ["t.yaml:1: sip: is required"]


def test_root_must_be_a_mapping() -> None:
    assert errors("- a\n- b\n") == ["t.yaml:1: (root): must be a mapping, got a list"]


def test_section_of_wrong_type_is_reported_once() -> None:
    assert errors("sip: [udp:127.0.0.1:5060]\nregistrar: 5\n") == [
        "t.yaml:1: sip: must be a mapping, got a list",
        "t.yaml:2: registrar: must be a mapping, got an integer",
    ]


def test_non_string_key() -> None:
    assert errors(base("? [a, b]\n: 1\n")) == ["t.yaml:4: (root): keys must be strings, got a list"]


def test_control_characters_are_refused() -> None:
    text = 'sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: a\n  user_agent: "acd\\r\\nX: 1"\n'
    assert errors(text) == [
        "t.yaml:4: sip.user_agent: must not contain control characters (tabs, line breaks)"]


# -- one case per rule: exact `file:line: key: reason` ------------------------------------


def sip(*lines: str) -> str:
    """A sip section with the given extra lines (lines 4...) after listen and domain."""
    return BASE + "".join(f"  {line}\n" for line in lines)


RULES = [
    # node_id
    pytest.param(base("node_id: a b\n"), [
        "t.yaml:4: node_id: must contain only letters, digits, '.', '_' and '-', got 'a b'"],
        id="node_id-pattern"),
    # sip.listen
    pytest.param("sip:\n  domain: acd.local\n", ["t.yaml:1: sip.listen: is required"],
                 id="listen-required"),
    pytest.param("sip:\n  listen: []\n  domain: d\n", [
        "t.yaml:2: sip.listen: must have at least one entry"], id="listen-empty"),
    pytest.param("sip:\n  listen: udp:1.2.3.4:5060\n  domain: d\n", [
        "t.yaml:2: sip.listen: must be a list, got a string"], id="listen-not-list"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - udp:1.2.3.4:5060\n"
                 "    - sctp:1.2.3.4:5060\n", [
        "t.yaml:5: sip.listen[1]: must be transport:host:port with transport udp or tcp, "
        "got 'sctp:1.2.3.4:5060'"], id="listen-transport"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - udp:localhost:5060\n", [
        "t.yaml:4: sip.listen[0]: host must be an IPv4 address or [IPv6], "
        "got 'udp:localhost:5060'"], id="listen-hostname"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - udp:::1:5060\n", [
        "t.yaml:4: sip.listen[0]: IPv6 host must be in brackets: [address]:port, "
        "got 'udp:::1:5060'"], id="listen-v6-brackets"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - udp:[::g]:5060\n", [
        "t.yaml:4: sip.listen[0]: brackets must hold an IPv6 address, got 'udp:[::g]:5060'"],
        id="listen-bad-v6"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - tcp:1.2.3.4:70000\n", [
        "t.yaml:4: sip.listen[0]: port must be 1-65535, got 'tcp:1.2.3.4:70000'"],
        id="listen-port-range"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - tcp:1.2.3.4:0\n", [
        "t.yaml:4: sip.listen[0]: port must be 1-65535, got 'tcp:1.2.3.4:0'"],
        id="listen-port-zero"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - tcp:1.2.3.4\n", [
        "t.yaml:4: sip.listen[0]: port is missing, got 'tcp:1.2.3.4'"], id="listen-no-port"),
    pytest.param("sip:\n  domain: d\n  listen:\n    - udp:[::1]:5060\n    - tcp:[::1]:5060\n"
                 "    - udp:[0:0::1]:5060\n", [
        "t.yaml:6: sip.listen[2]: duplicate listen address, first at sip.listen[0] (line 4)"],
        id="listen-duplicate"),
    # sip scalars
    pytest.param("sip:\n  listen: [udp:127.0.0.1:5060]\n", ["t.yaml:1: sip.domain: is required"],
                 id="domain-required"),
    pytest.param("sip:\n  listen: [udp:127.0.0.1:5060]\n  domain:\n", [
        "t.yaml:3: sip.domain: must not be empty"], id="domain-null"),
    pytest.param("sip:\n  listen: [udp:127.0.0.1:5060]\n  domain: acd local\n", [
        "t.yaml:3: sip.domain: must be a host name, got 'acd local'"], id="domain-pattern"),
    pytest.param(sip("realm: ''"), ["t.yaml:4: sip.realm: must not be empty"], id="realm-empty"),
    pytest.param(sip("user_agent: [a]"), ["t.yaml:4: sip.user_agent: must be a string, got a list"],
                 id="user_agent-type"),
    pytest.param(sip("timers:", "  t1: 0"), ["t.yaml:5: sip.timers.t1: must be > 0, got 0"],
                 id="t1-positive"),
    pytest.param(sip("timers:", "  t4: -1.5"), ["t.yaml:5: sip.timers.t4: must be > 0, got -1.5"],
                 id="t4-positive"),
    pytest.param(sip("timers:", "  t2: fast"), [
        "t.yaml:5: sip.timers.t2: must be a number, got a string"], id="t2-type"),
    pytest.param(sip("timers:", "  t1: .nan"), [
        "t.yaml:5: sip.timers.t1: must be a finite number, got '.nan'"], id="t1-nan"),
    pytest.param(sip("timers:", "  t1: 5", "  t2: 4"), [
        "t.yaml:5: sip.timers.t1: t1 (5) must not exceed t2 (4)"], id="t1-gt-t2"),
    pytest.param(sip("timers:", "  t2: 0.25"), [
        "t.yaml:5: sip.timers.t2: t1 (0.5) must not exceed t2 (0.25)"], id="t2-lt-default-t1"),
    pytest.param(sip("max_message_size: 100"), [
        "t.yaml:4: sip.max_message_size: must be between 1024 and 1048576, got 100"],
        id="max_message_size-range"),
    pytest.param(sip("max_headers: 2000"), [
        "t.yaml:4: sip.max_headers: must be between 16 and 1024, got 2000"],
        id="max_headers-range"),
    pytest.param(sip("max_headers: 16.5"), [
        "t.yaml:4: sip.max_headers: must be an integer, got a number"], id="max_headers-float"),
    pytest.param(sip("max_headers: true"), [
        "t.yaml:4: sip.max_headers: must be an integer, got a boolean"], id="max_headers-bool"),
    # registrar
    pytest.param(base("registrar:\n  min_expires: 0\n"), [
        "t.yaml:5: registrar.min_expires: must be >= 1, got 0"], id="min_expires-range"),
    pytest.param(base("registrar:\n  qualify_interval: -1\n"), [
        "t.yaml:5: registrar.qualify_interval: must be >= 0, got -1"], id="qualify-range"),
    pytest.param(base("registrar:\n  max_expires: 100\n  min_expires: 200\n"), [
        "t.yaml:6: registrar.min_expires: min_expires (200) must not exceed max_expires (100)"],
        id="min-gt-max"),
    pytest.param(base("registrar:\n  min_expires: 60\n  default_expires: 30\n"), [
        "t.yaml:6: registrar.default_expires: default_expires (30) must be between "
        "min_expires (60) and max_expires (7200)"], id="default-below-min"),
    pytest.param(base("registrar:\n  max_expires: 1800\n"), [
        "t.yaml:5: registrar.max_expires: default_expires (3600) must be between "
        "min_expires (60) and max_expires (1800)"], id="max-below-default"),
    # security
    pytest.param(base("security:\n  nonce_lifetime: 0\n"), [
        "t.yaml:5: security.nonce_lifetime: must be >= 1, got 0"], id="nonce-range"),
    pytest.param(base("security:\n  auth_ban:\n    max_failures: 0\n    window: 0\n"
                      "    ban_time: -1\n"), [
        "t.yaml:6: security.auth_ban.max_failures: must be >= 1, got 0",
        "t.yaml:7: security.auth_ban.window: must be > 0, got 0",
        "t.yaml:8: security.auth_ban.ban_time: must be > 0, got -1",
    ], id="auth_ban"),
    pytest.param(base("security:\n  trusted_networks:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n"
                      "    - bogus\n"), [
        "t.yaml:7: security.trusted_networks[1]: has host bits set, got '10.0.0.1/8' "
        "(did you mean 10.0.0.0/8?)",
        "t.yaml:8: security.trusted_networks[2]: must be an IP address or CIDR network, "
        "got 'bogus'",
    ], id="trusted_networks"),
    pytest.param(base("security:\n  digest_algorithms: []\n"), [
        "t.yaml:5: security.digest_algorithms: must have at least one entry"],
        id="algorithms-empty"),
    pytest.param(base("security:\n  digest_algorithms: [MD5, SHA1]\n"), [
        "t.yaml:5: security.digest_algorithms[1]: must be one of MD5, SHA-256, got 'SHA1'"],
        id="algorithms-unknown"),
    pytest.param(base("security:\n  digest_algorithms:\n    - SHA-256\n    - SHA-256\n"), [
        "t.yaml:7: security.digest_algorithms[1]: duplicate algorithm 'SHA-256', "
        "first at security.digest_algorithms[0] (line 6)"], id="algorithms-duplicate"),
    # admin
    pytest.param(base("admin:\n  listen: localhost\n"), [
        "t.yaml:5: admin.listen: port is missing, got 'localhost'"], id="admin-listen-port"),
    pytest.param(base("admin:\n  listen: ::1:8080\n"), [
        "t.yaml:5: admin.listen: IPv6 host must be in brackets: [address]:port, got '::1:8080'"],
        id="admin-listen-v6"),
    pytest.param(base("admin:\n  tokens:\n    - token: abcdefgh\n      role: root\n"), [
        "t.yaml:7: admin.tokens[0].role: must be one of admin, read, got 'root'"],
        id="token-role"),
    pytest.param(base("admin:\n  tokens:\n    - token: abcdefgh\n"), [
        "t.yaml:6: admin.tokens[0].role: is required"], id="token-role-required"),
    pytest.param(base("admin:\n  tokens:\n    - {token: short, role: read}\n"), [
        "t.yaml:6: admin.tokens[0].token: must be at least 8 characters"], id="token-short"),
    pytest.param(base("admin:\n  tokens:\n    - {token: abcdefgh, role: read}\n"
                      "    - {token: abcdefgh, role: admin}\n"), [
        "t.yaml:7: admin.tokens[1].token: duplicate token, first at admin.tokens[0].token "
        "(line 6)"], id="token-duplicate"),
    # store, events, logging
    pytest.param(base("store:\n  url: mysql://root:hunter2@db/acd\n"), [
        "t.yaml:5: store.url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
        "got 'mysql://'"], id="store-scheme"),
    pytest.param(base("events:\n  bus: kafka://k:9092\n"), [
        "t.yaml:5: events.bus: must be inproc or a redis:// or rediss:// URL"], id="bus"),
    pytest.param(base("events:\n  bus: redis://127.0.0.1:6379/0\n  maxlen: 0\n"), [
        "t.yaml:6: events.maxlen: must be >= 1, got 0"], id="maxlen"),
    pytest.param(base("logging:\n  format: xml\n"), [
        "t.yaml:5: logging.format: must be one of json, console, got 'xml'"], id="format"),
    # accounts
    pytest.param(base("""\
        accounts:
          - user: "1001"
            password: a
          - user: 10 01
            password: b
        """), ["t.yaml:7: accounts[1].user: must contain only letters, digits, '.', '_' and "
               "'-', got '10 01'"], id="user-pattern"),
    pytest.param(base("accounts:\n  - password: a\n"), ["t.yaml:5: accounts[0].user: is required"],
                 id="user-required"),
    pytest.param(base("""\
        accounts:
          - user: "1001"
            password: a
          - user: "1002"
            password: b
          - user: "1003"
            password: c
            ha1: 0123456789abcdef0123456789abcdef
        """), ["t.yaml:11: accounts[2].ha1: cannot be combined with password; set exactly one"],
        id="password-and-ha1"),
    pytest.param(base("accounts:\n  - user: a\n    display_name: A\n"), [
        "t.yaml:5: accounts[0]: needs a password or an ha1"], id="password-or-ha1"),
    pytest.param(base("accounts:\n  - user: a\n    ha1: abc\n"), [
        "t.yaml:6: accounts[0].ha1: must be 32 hex digits (MD5 of user:realm:password)"],
        id="ha1-format"),
    pytest.param(base(f"accounts:\n  - user: a\n    ha1: {'a' * 32}\n"
                      f"    ha1_sha256: {'b' * 63}\n"), [
        "t.yaml:7: accounts[0].ha1_sha256: must be 64 hex digits (SHA-256 of "
        "user:realm:password)"], id="ha1_sha256-format"),
    pytest.param(base(f"accounts:\n  - user: a\n    password: p\n    ha1_sha256: {'b' * 64}\n"), [
        "t.yaml:7: accounts[0].ha1_sha256: is only allowed together with ha1"],
        id="ha1_sha256-without-ha1"),
    pytest.param(base("accounts:\n  - {user: a, password: p, max_contacts: 0}\n"), [
        "t.yaml:5: accounts[0].max_contacts: must be >= 1, got 0"], id="max_contacts"),
    pytest.param(base("accounts:\n  - user: a\n    password: p\n"
                      "    allowed_networks: [1.2.3.4/33]\n"), [
        "t.yaml:7: accounts[0].allowed_networks[0]: must be an IP address or CIDR network, "
        "got '1.2.3.4/33'"], id="allowed_networks"),
    pytest.param(base("accounts:\n  - user: 1001\n    password: p\n"
                      "  - user: '1001'\n    password: q\n"), [
        "t.yaml:7: accounts[1].user: duplicate user '1001', first at accounts[0].user (line 5)"],
        id="user-duplicate"),
    pytest.param(base("accounts:\n  - x\n"), [
        "t.yaml:5: accounts[0]: must be a mapping, got a string"],
                 id="account-not-mapping"),
    pytest.param(base("accounts: {user: a}\n"), [
        "t.yaml:4: accounts: must be a list, got a mapping"],
                 id="accounts-not-list"),
    # trunks
    pytest.param(base("trunks:\n  - name: my trunk\n    inbound: {sources: [1.2.3.4]}\n"), [
        "t.yaml:5: trunks[0].name: must contain only letters, digits, '_' and '-', "
        "got 'my trunk'"], id="trunk-name"),
    pytest.param(base("""\
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
          - name: t
            inbound: {sources: [1.2.3.5]}
        """), ["t.yaml:7: trunks[1].name: duplicate trunk name 't', first at trunks[0].name "
               "(line 5)"], id="trunk-name-duplicate"),
    pytest.param(base("trunks:\n  - name: t\n    hotlines: ['1']\n"), [
        "t.yaml:5: trunks[0].inbound: needs sources or auth"], id="trunk-no-inbound"),
    pytest.param(base("trunks:\n  - name: t\n    inbound:\n      sources: []\n"), [
        "t.yaml:6: trunks[0].inbound: needs sources or auth"], id="trunk-empty-sources"),
    pytest.param(base("""\
        trunks:
          - name: t
            inbound:
              sources:
                - 1.2.3.4:99999
                - carrier.example
                - 10.0.0.1/24
        """), [
        "t.yaml:8: trunks[0].inbound.sources[0]: port must be 1-65535, got '1.2.3.4:99999'",
        "t.yaml:9: trunks[0].inbound.sources[1]: must be IP, IP:port, CIDR, [IPv6] or "
        "[IPv6]:port, got 'carrier.example'",
        "t.yaml:10: trunks[0].inbound.sources[2]: must be IP, IP:port, CIDR, [IPv6] or "
        "[IPv6]:port, got '10.0.0.1/24'",
    ], id="trunk-sources"),
    pytest.param(base("trunks:\n  - name: t\n    inbound:\n      auth: {username: u}\n"), [
        "t.yaml:7: trunks[0].inbound.auth.password: is required"], id="trunk-auth-password"),
    pytest.param(base("""\
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
            outbound:
              transport: tls
        """), [
        "t.yaml:7: trunks[0].outbound.proxy: is required",
        "t.yaml:8: trunks[0].outbound.transport: must be one of udp, tcp, got 'tls'",
    ], id="trunk-outbound"),
    pytest.param(base("""\
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
            outbound:
              proxy: bad_host!:5060
              from_domain: a..b
        """), [
        "t.yaml:8: trunks[0].outbound.proxy: host must be an IPv4 address or [IPv6] or a DNS "
        "name, got 'bad_host!:5060'",
        "t.yaml:9: trunks[0].outbound.from_domain: must be a host name, got 'a..b'",
    ], id="trunk-proxy"),
    pytest.param(base("""\
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
            outbound:
              proxy: 999.1.1.1
              register:
                username: u
                expires: 0
        """), [
        "t.yaml:8: trunks[0].outbound.proxy: host must be an IPv4 address or [IPv6] or a DNS "
        "name, got '999.1.1.1'",
        "t.yaml:9: trunks[0].outbound.register.password: is required",
        "t.yaml:11: trunks[0].outbound.register.expires: must be >= 1, got 0",
    ], id="trunk-register"),
    pytest.param(base("trunks:\n  - name: t\n    inbound: {sources: [1.2.3.4]}\n"
                      "    options_ping: -5\n"), [
        "t.yaml:7: trunks[0].options_ping: must be >= 0, got -5"], id="options_ping"),
    pytest.param(base("trunks:\n  - name: t\n    inbound: {sources: [1.2.3.4]}\n"
                      "    hotlines: ['19001000', 1900-2000]\n"), [
        "t.yaml:7: trunks[0].hotlines[1]: must contain only digits, got '1900-2000'"],
        id="hotline-digits"),
    pytest.param(base("""\
        trunks:
          - name: a
            inbound: {sources: [1.2.3.4]}
            hotlines:
              - "19001000"
              - "19002000"
          - name: b
            inbound: {sources: [1.2.3.5]}
            hotlines: [19003000, 19002000]
        """), [
        "t.yaml:12: trunks[1].hotlines[1]: duplicate hotline '19002000', first at "
        "trunks[0].hotlines[1] (line 9)"], id="hotline-duplicate-across-trunks"),
]


@pytest.mark.parametrize(("text", "expected"), RULES)
def test_rule(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


# -- accepted forms -----------------------------------------------------------------------


def test_numbers_written_unquoted_keep_their_text() -> None:
    c = load(base("""\
        accounts:
          - user: 0123            # YAML 1.1 would read octal 83
            password: 1234
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
            hotlines: [08001234, 19001000]
        """))
    assert (c.accounts[0].user, c.accounts[0].password) == ("0123", "1234")
    assert c.trunks[0].hotlines == ("08001234", "19001000")


def test_booleans_are_not_taken_as_strings() -> None:
    assert errors(base("accounts:\n  - user: a\n    password: yes\n")) == [
        "t.yaml:6: accounts[0].password: must be a string, got a boolean (quote it)"]


def test_ha1_accounts_and_defaults() -> None:
    ha1, ha1_256 = "0123456789ABCDEF" * 2, "ab" * 32
    [a] = load(base(f"accounts:\n  - user: agent.7\n    ha1: {ha1}\n    ha1_sha256: {ha1_256}\n"
                    )).accounts
    assert (a.user, a.password, a.ha1, a.ha1_sha256) == ("agent.7", None, ha1.lower(), ha1_256)
    assert (a.display_name, a.max_contacts, a.allowed_networks) == ("agent.7", 5, ())


def test_trunk_source_forms() -> None:
    c = load(base("""\
        trunks:
          - name: t
            inbound:
              sources: [1.2.3.4, "1.2.3.4:5070", 10.0.0.0/24, "[2001:db8::1]:5060",
                        "[2001:db8::2]", 2001:db8::/32, ::1]
        """))
    net = ipaddress.ip_network
    assert c.trunks[0].inbound.sources == (
        TrunkSource(net("1.2.3.4/32")), TrunkSource(net("1.2.3.4/32"), 5070),
        TrunkSource(net("10.0.0.0/24")), TrunkSource(net("2001:db8::1/128"), 5060),
        TrunkSource(net("2001:db8::2/128")), TrunkSource(net("2001:db8::/32")),
        TrunkSource(net("::1/128")),
    )


def test_trunk_outbound_and_auth() -> None:
    [t] = load(base("""\
        trunks:
          - name: carrier_1
            inbound:
              auth: {username: 5551234, password: s3cret}
            outbound:
              proxy: sip.carrier.example
              transport: tcp
              from_domain: carrier.example
              register: {username: 5551234, password: s3cret, realm: carrier}
            options_ping: 0
        """)).trunks
    assert t.inbound.sources == ()
    assert t.inbound.auth is not None
    assert (t.inbound.auth.username, t.inbound.auth.password) == ("5551234", "s3cret")
    assert t.outbound is not None
    assert t.outbound.proxy == HostPort("sip.carrier.example", 5060)
    assert (t.outbound.transport, t.outbound.from_domain) == ("tcp", "carrier.example")
    assert t.outbound.register is not None
    assert (t.outbound.register.expires, t.outbound.register.realm) == (600, "carrier")
    assert (t.options_ping, t.hotlines) == (0, ())


def test_host_port_forms() -> None:
    c = load(base("""\
        admin:
          listen: "[::1]:8081"
        trunks:
          - name: t
            inbound: {sources: [1.2.3.4]}
            outbound: {proxy: "[2001:db8::5]:5070"}
        """))
    assert c.admin.listen == HostPort("::1", 8081)
    assert c.trunks[0].outbound is not None
    assert c.trunks[0].outbound.proxy == HostPort("2001:db8::5", 5070)


def test_other_sections_accept_valid_values() -> None:
    c = load(base("""\
        security:
          digest_algorithms: [SHA-256]
        store:
          url: postgresql+asyncpg://acd:pw@db/acd
        events:
          bus: rediss://cache:6380/1
          stream: calls
          maxlen: 5000
        logging: {level: debug, format: console}
        registrar: {"min_expires":30, "default_expires" :30}
        """))
    assert c.security.digest_algorithms == ("SHA-256",)
    assert c.store.url == "postgresql+asyncpg://acd:pw@db/acd"
    assert (c.events.bus, c.events.stream, c.events.maxlen) == ("rediss://cache:6380/1",
                                                                "calls", 5000)
    assert (c.logging.level, c.logging.format) == ("debug", "console")
    assert (c.registrar.min_expires, c.registrar.default_expires) == (30, 30)


def test_ipv6_literals_in_flow_lists_need_no_quotes() -> None:
    c = load(base("security:\n  trusted_networks: [::1/128, ::ffff:0:0/96, 10.0.0.0/8]\n"))
    assert c.security.trusted_networks == (ipaddress.ip_network("::1/128"),
                                           ipaddress.ip_network("::ffff:0:0/96"),
                                           ipaddress.ip_network("10.0.0.0/8"))


def test_merge_keys_fill_unset_keys_and_report_bad_merged_values() -> None:
    text = base("""\
        accounts:
          - &agent
            user: "1001"
            password: p
            max_contacts: 2
          - <<: *agent
            user: "1002"
        """)
    assert [(a.user, a.max_contacts) for a in load(text).accounts] == [("1001", 2),
                                                                       ("1002", 2)]
    bad = text.replace("max_contacts: 2", "max_contacts: 0")
    assert errors(bad) == [
        "t.yaml:8: accounts[0].max_contacts: must be >= 1, got 0",
        "t.yaml:8: accounts[1].max_contacts: must be >= 1, got 0",
    ]


def test_passwords_and_tokens_never_appear_in_problems() -> None:
    secret = "hunter2hunter2"
    texts = [
        f"accounts:\n  - user: a\n    password: [{secret}]\n",
        f"accounts:\n  - user: a\n    password: \"{secret}\\n\"\n",
        f"accounts:\n  - user: a\n    password: {secret}\n    password: {secret}\n",
        f"accounts:\n  - user: a\n    pasword: {secret}\n",
        f"accounts:\n  - user: a\n    password: {secret}\n    ha1: {secret}\n",
        f"accounts:\n  - user: a\n    password: {secret}\n    ha1_sha256: {secret}\n",
        f"admin:\n  tokens: [{{token: {secret}, role: x}}, {{token: {secret}, role: read}}]\n",
        f"admin:\n  tokens: [{{token: {secret[:7]}, role: read}}]\n",
        f"store:\n  url: mysql://root:{secret}@db\n",
        f"events:\n  bus: amqp://u:{secret}@mq\n",
        f"trunks:\n  - name: t\n    inbound:\n      auth: {{password: {secret}}}\n",
    ]
    for text in texts:
        message = "\n".join(errors(base(text)))
        assert message
        assert secret[:7] not in message, message


# -- fuzzing: nothing but ConfigError ever escapes ----------------------------------------


def check_only_config_error(text: str) -> None:
    try:
        load_config_text(text, "f.yaml")
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == "f.yaml"
            assert 1 <= p.line <= len(text.splitlines()) + 1, p
            assert p.key and p.reason


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    check_only_config_error(text)


YAML_PIECES = st.sampled_from([
    ":", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!int ", "!!float ", "? ",
    "\n", "\n  ", "\n    ", "'", '"', "#", "|\n", "::1", "0x", "1:30", ".inf", "~",
    "sip", "listen", "accounts", "user", "password", "trunks", "hotlines", "udp:[::1]:1",
])


@FUZZ
@given(st.lists(st.one_of(YAML_PIECES, st.text(max_size=4)), max_size=40))
def test_yaml_like_text_raises_only_config_error(pieces: list[str]) -> None:
    check_only_config_error("".join(pieces))


DEMO_LINES = DEMO.read_text().splitlines()
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=12), st.sampled_from(["::1", "[::1]:1", "udp:1.2.3.4:5"]))


@FUZZ
@given(st.data())
def test_mutated_demo_config_raises_only_config_error(data: st.DataObject) -> None:
    lines = list(DEMO_LINES)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        head = line[: len(line) - len(line.lstrip())]
        key = line.strip().split(":", 1)[0] if ":" in line else "- "
        value = yaml.safe_dump(data.draw(SCALARS), default_flow_style=True).split("\n...")[0]
        lines[i] = data.draw(st.sampled_from([
            "", f"{head}{key}: {value.strip()}", f"{head}- {value.strip()}",
            line + line, line.replace("  ", " ", 1), line.upper(),
        ]))
    check_only_config_error("\n".join(lines) + "\n")


KEYS = st.sampled_from(["sip", "listen", "domain", "timers", "t1", "registrar", "security",
                        "auth_ban", "accounts", "user", "password", "ha1", "trunks", "name",
                        "inbound", "sources", "auth", "outbound", "register", "hotlines",
                        "admin", "tokens", "token", "role", "<<", "x"])
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)


@FUZZ
@given(st.dictionaries(KEYS, TREES, max_size=6))
def test_random_config_trees_raise_only_config_error(tree: dict[str, object]) -> None:
    check_only_config_error(yaml.safe_dump(tree))


def test_yaml_1_1_number_forms_are_refused() -> None:
    assert errors(base("security:\n  auth_ban:\n    ban_time: 0600\n    window: 1:30\n")) == [
        "t.yaml:6: security.auth_ban.ban_time: must be a plain decimal number (no leading "
        "zeros or ':'), got '0600'",
        "t.yaml:7: security.auth_ban.window: must be a plain decimal number (no leading "
        "zeros or ':'), got '1:30'",
    ]


def test_hostile_scalars_become_problems() -> None:
    assert errors(base("registrar:\n  min_expires: " + "9" * 5000 + "\n"
                       "security:\n  auth_ban:\n    window: !!float x\n")) == [
        f"t.yaml:5: registrar.min_expires: must be an integer, got '{'9' * 57}...'",
        "t.yaml:8: security.auth_ban.window: must be a number, got 'x'",
    ]


def test_deep_nesting_and_recursive_aliases_become_problems() -> None:
    assert errors("[" * 5000) == ["t.yaml:1: (yaml): nesting is too deep"]
    assert errors(base("accounts: &a [*a]\n")) == [
        "t.yaml:4: accounts[0]: must be a mapping, got a list"]
    assert load(base("logging: &a {<<: *a, level: debug}\n")).logging.level == "debug"


# -- the toolkit future sections are written with ------------------------------------------


def toolkit(text: str) -> tuple[Fields, Report]:
    report = Report("k.yaml")
    return Node.root(parse(text, report), report).fields(("flag", "queue", "n")), report


def test_toolkit_bool_and_reference_getters() -> None:
    f, report = toolkit("flag: yes\nqueue: sales\n")
    assert f.opt_bool("flag", False) is True
    assert f.req("queue", "", lambda n: n.ref({"sales", "support"}, "queue")) == "sales"
    assert f.opt_int("n", 7) == 7
    assert report.problems == []

    f, report = toolkit("flag: 1\nqueue: salse\n")
    assert f.opt_bool("flag", False) is False
    assert f.req("queue", "", lambda n: n.ref({"sales", "support"}, "queue")) == ""
    f.req_int("n")
    assert not f.ok("flag") and not f.ok("queue") and not f.ok("n")
    assert [str(p) for p in report.problems] == [
        "k.yaml:1: flag: must be true or false, got an integer",
        "k.yaml:2: queue: unknown queue 'salse', did you mean 'sales'?",
        "k.yaml:1: n: is required",
    ]
    with pytest.raises(ConfigError) as info:
        report.raise_if_any()
    assert [p.line for p in info.value.problems] == [1, 1, 2]
