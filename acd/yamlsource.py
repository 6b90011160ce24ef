"""Line-tracking YAML source and the toolkit configuration sections are validated with.

Owns: parsing text into YAML nodes that keep their line, the Problem / ConfigError types,
and Node / Fields, whose typed getters record problems in one shared Report instead of
raising, so a single run lists every mistake in a file.

Getters never raise on bad input: they record a problem and return None (Node) or the
default / a placeholder (Fields), so validation goes on; the owner of the Report raises
once at the end. Values of secret fields never appear in a reason.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROOT = "(root)"
SYNTAX = "(yaml)"
FILE = "(file)"

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
MERGE = _TAG + "merge"
_KINDS = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "a boolean",
          NULL: "null", _TAG + "timestamp": "a date"}
_SPACE = "\0 \t\r\n\x85\u2028\u2029"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# YAML 1.1 reads `0600` as octal 384 and `1:30` as 90; YAML 1.2 readers disagree. Refuse both.
_AMBIGUOUS_NUMBER = re.compile(r"[-+]?0[0-9_]+|.*:.*")
_QUOTABLE = (INT, FLOAT, BOOL, _TAG + "timestamp")
# A bad scalar under an explicit tag (e.g. `!!int x`) or an int beyond Python's digit limit.
_CONVERSION_ERRORS = (ValueError, LookupError, ArithmeticError)
_CONSTRUCTOR = SafeConstructor()

D = TypeVar("D")
V = TypeVar("V")
S = TypeVar("S", bound=str)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file, where it is and why."""

    file: str
    line: int
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.reason}"


class ConfigError(Exception):
    """Every problem found in one configuration file."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(list(problems))
        self.problems: list[Problem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class Report:
    """The shared problem list of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int, key: str, reason: str) -> None:
        self.problems.append(Problem(self.file, line, key, reason))

    def raise_if_any(self) -> None:
        if self.problems:
            # Cross-checks run after the walk; sorting keeps the output in file order.
            raise ConfigError(sorted(self.problems, key=lambda p: p.line))


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `[::1/128]` as YAML 1.2 does.

    PyYAML treats every ':' in a flow collection as a value indicator, so an IPv6 literal
    that starts with '::' inside `[...]` is a syntax error. YAML 1.2 lets a plain scalar
    start with ':' when a non-space, non-flow-indicator follows; it is still a value
    indicator right after a key (`{"a":1}`), which is when a simple key is pending.
    """

    def _colon_starts_scalar(self) -> bool:
        return (bool(self.flow_level) and self.peek() == ":"
                and self.peek(1) not in _SPACE + ",[]{}"
                and self.flow_level not in self.possible_simple_keys)

    def check_value(self) -> bool:
        return not self._colon_starts_scalar() and super().check_value()

    def check_plain(self) -> bool:
        return self._colon_starts_scalar() or super().check_plain()


def parse(text: str, report: Report) -> YamlNode | None:
    """The single document's root node; None (and a problem) if the text is not YAML."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root: YamlNode | None = loader.get_single_node()
        return root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            reason = f"{exc.problem} ({exc.context})"
        report.add(mark.line + 1 if mark else 1, SYNTAX, reason)
    except yaml.reader.ReaderError as exc:
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        report.add(text.count("\n", 0, exc.position) + 1, SYNTAX,
                   f"unacceptable character {char}: {exc.reason}")
    except RecursionError:
        report.add(1, SYNTAX, "nesting is too deep")
    except Exception as exc:  # a parser bug must still come out as a Problem
        report.add(1, SYNTAX, f"cannot parse: {type(exc).__name__}")
    finally:
        if loader is not None:
            loader.dispose()
    return None


def line_of(raw: YamlNode, default: int = 1) -> int:
    return raw.start_mark.line + 1 if raw.start_mark is not None else default


def kind_of(raw: YamlNode) -> str:
    if isinstance(raw, MappingNode):
        return "a mapping"
    if isinstance(raw, SequenceNode):
        return "a list"
    return _KINDS.get(raw.tag, f"a {raw.tag.replace(_TAG, '!!')} value")


def shown(value: str) -> str:
    """A value quoted for a reason, cut short so one bad line cannot flood the output."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def range_reason(got: str, *, min: float | None = None, max: float | None = None,
                 gt: float | None = None) -> str:
    if gt is not None:
        return f"must be > {_num(gt)}, got {got}"
    if min is not None and max is not None:
        return f"must be between {_num(min)} and {_num(max)}, got {got}"
    if min is not None:
        return f"must be >= {_num(min)}, got {got}"
    return f"must be <= {_num(max or 0)}, got {got}"


class Node:
    """One YAML value with its dotted path and the line its problems are reported at.

    `line` is the line of the value's key for mapping values (where the reader looks even
    when a block list starts below it) and of the item itself for list items.
    """

    __slots__ = ("line", "path", "raw", "report")

    def __init__(self, raw: YamlNode, path: str, line: int, report: Report) -> None:
        self.raw = raw
        self.path = path
        self.line = line
        self.report = report

    @classmethod
    def root(cls, raw: YamlNode | None, report: Report) -> Node:
        """The document node; an empty document reads as an empty mapping."""
        return cls(raw if raw is not None else MappingNode(_TAG + "map", []), "", 1, report)

    @property
    def kind(self) -> str:
        return kind_of(self.raw)

    @property
    def is_null(self) -> bool:
        return isinstance(self.raw, ScalarNode) and self.raw.tag == NULL

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, reason: str) -> None:
        self.report.add(self.line, self.path or ROOT, reason)

    # -- collections ---------------------------------------------------------------------

    def items(self) -> list[Node] | None:
        if not isinstance(self.raw, SequenceNode):
            self.problem(f"must be a list, got {self.kind}")
            return None
        return [Node(item, f"{self.path}[{i}]", line_of(item, self.line), self.report)
                for i, item in enumerate(self.raw.value)]

    def fields(self, keys: Collection[str]) -> Fields:
        """This mapping's children, with unknown and duplicate keys reported.

        `<<` merge keys are honoured: merged entries fill only keys not set explicitly.
        """
        if not isinstance(self.raw, MappingNode):
            self.problem(f"must be a mapping, got {self.kind}")
            return Fields(self, {}, quiet=True)
        children: dict[str, Node] = {}
        first_line: dict[str, int] = {}
        for key_raw, value_raw in self.raw.value:
            if key_raw.tag == MERGE:
                continue
            key = self._key(key_raw)
            if key is None:
                continue
            node = Node(value_raw, self.child_path(key), line_of(key_raw, self.line), self.report)
            if key in first_line:
                node.problem(f"duplicate key, first at line {first_line[key]}")
            elif self._known(node, key, keys):
                children[key] = node
            first_line.setdefault(key, node.line)
        for key_raw, value_raw in self._merged(self.raw, set()):
            key = self._key(key_raw)
            if key is None or key in first_line:
                continue
            node = Node(value_raw, self.child_path(key), line_of(key_raw, self.line), self.report)
            first_line[key] = node.line
            if self._known(node, key, keys):
                children[key] = node
        return Fields(self, children)

    def _key(self, key_raw: YamlNode) -> str | None:
        if isinstance(key_raw, ScalarNode):
            return key_raw.value
        self.report.add(line_of(key_raw, self.line), self.path or ROOT,
                        f"keys must be strings, got {kind_of(key_raw)}")
        return None

    @staticmethod
    def _known(node: Node, key: str, keys: Collection[str]) -> bool:
        if key in keys:
            return True
        close = difflib.get_close_matches(key, list(keys), n=1)
        if close:
            node.problem(f"unknown key, did you mean {close[0]!r}?")
        elif keys:
            node.problem(f"unknown key (expected one of: {', '.join(keys)})")
        else:
            node.problem("unknown key")
        return False

    def _merged(self, raw: MappingNode, seen: set[int]) -> list[tuple[YamlNode, YamlNode]]:
        """Entries merged into `raw` by `<<`, highest precedence first."""
        out: list[tuple[YamlNode, YamlNode]] = []
        for key_raw, value_raw in raw.value:
            if key_raw.tag != MERGE:
                continue
            sources = value_raw.value if isinstance(value_raw, SequenceNode) else [value_raw]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.report.add(line_of(key_raw, self.line), self.child_path("<<"),
                                    f"must merge a mapping or a list of mappings, "
                                    f"got {kind_of(source)}")
                elif id(source) not in seen:  # `&a {<<: *a}` would loop forever
                    seen.add(id(source))
                    out.extend(pair for pair in source.value if pair[0].tag != MERGE)
                    out.extend(self._merged(source, seen))
        return out

    # -- scalars -------------------------------------------------------------------------

    def _scalar(self, tags: Collection[str], expected: str) -> ScalarNode | None:
        raw = self.raw
        if not (isinstance(raw, ScalarNode) and raw.tag in tags):
            self.problem(f"must be {expected}, got {self.kind}")
            return None
        if raw.tag in (INT, FLOAT) and raw.style is None and _AMBIGUOUS_NUMBER.fullmatch(
                raw.value):
            self.problem(f"must be a plain decimal number (no leading zeros or ':'), "
                         f"got {shown(raw.value)}")
            return None
        return raw

    def text(self, *, pattern: re.Pattern[str] | None = None, rule: str = "",
             numeric: bool = False, secret: bool = False) -> str | None:
        """A non-empty string without control characters.

        numeric: also take an unquoted number, as written (`user: 0123` stays "0123"
        rather than YAML 1.1's octal 83). pattern/rule: the full-match it must pass and the
        reason ("must ...") when it does not. secret: never echo the value.
        """
        raw = self.raw
        if not (isinstance(raw, ScalarNode) and (raw.tag == STR or (
                numeric and raw.tag in (INT, FLOAT) and raw.style is None))):
            hint = " (quote it)" if isinstance(raw, ScalarNode) and raw.tag in _QUOTABLE else ""
            self.problem(f"must be a string, got {self.kind}{hint}")
            return None
        value: str = raw.value
        if not value:
            self.problem("must not be empty")
        elif _CONTROL.search(value):
            self.problem("must not contain control characters (tabs, line breaks)")
        elif pattern is not None and not pattern.fullmatch(value):
            self.problem(rule if secret else f"{rule}, got {shown(value)}")
        else:
            return value
        return None

    def choice(self, choices: Sequence[S]) -> S | None:
        value = self.text()
        if value is None:
            return None
        for choice in choices:
            if choice == value:
                return choice
        self.problem(f"must be one of {', '.join(choices)}, got {shown(value)}")
        return None

    def integer(self, *, min: int | None = None, max: int | None = None) -> int | None:
        raw = self._scalar((INT,), "an integer")
        if raw is None:
            return None
        try:
            value = _CONSTRUCTOR.construct_yaml_int(raw)
        except _CONVERSION_ERRORS:
            self.problem(f"must be an integer, got {shown(raw.value)}")
            return None
        if (min is not None and value < min) or (max is not None and value > max):
            self.problem(range_reason(raw.value, min=min, max=max))
            return None
        return value

    def number(self, *, gt: float | None = None, min: float | None = None,
               max: float | None = None) -> float | None:
        raw = self._scalar((INT, FLOAT), "a number")
        if raw is None:
            return None
        try:
            value = float(_CONSTRUCTOR.construct_yaml_int(raw) if raw.tag == INT
                          else _CONSTRUCTOR.construct_yaml_float(raw))
        except _CONVERSION_ERRORS:
            self.problem(f"must be a number, got {shown(raw.value)}")
            return None
        if not math.isfinite(value):
            self.problem(f"must be a finite number, got {shown(raw.value)}")
            return None
        if ((gt is not None and value <= gt) or (min is not None and value < min)
                or (max is not None and value > max)):
            self.problem(range_reason(raw.value, gt=gt, min=min, max=max))
            return None
        return value

    def boolean(self) -> bool | None:
        raw = self._scalar((BOOL,), "true or false")
        if raw is None:
            return None
        try:
            return _CONSTRUCTOR.construct_yaml_bool(raw)
        except _CONVERSION_ERRORS:
            self.problem(f"must be true or false, got {shown(raw.value)}")
            return None

    def ref(self, known: Collection[str], what: str) -> str | None:
        """A name defined elsewhere in the file (a trunk, a queue...), e.g. a route target."""
        value = self.text(numeric=True)
        if value is None or value in known:
            return value
        close = difflib.get_close_matches(value, list(known), n=1)
        self.problem(f"unknown {what} {shown(value)}"
                     + (f", did you mean {close[0]!r}?" if close else ""))
        return None

    def network(self) -> IPNetwork | None:
        """An IP address or CIDR network; an address is its single-host network."""
        value = self.text()
        if value is None:
            return None
        try:
            return ipaddress.ip_network(value)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.problem(f"must be an IP address or CIDR network, got {shown(value)}")
            return None
        self.problem(f"has host bits set, got {shown(value)} (did you mean {loose}?)")
        return None


class Fields:
    """The checked keys of one mapping, read with typed getters that apply defaults.

    A null value counts as absent. A key whose value was bad is remembered in `bad`, so
    cross-field rules can skip comparisons against placeholders (see `ok`).
    `quiet` Fields stand for a section already reported missing or malformed: their
    required keys are not reported again.
    """

    __slots__ = ("bad", "children", "node", "quiet")

    def __init__(self, node: Node, children: dict[str, Node], *, quiet: bool = False) -> None:
        self.node = node
        self.children = children
        self.quiet = quiet
        self.bad: set[str] = set()

    @classmethod
    def absent(cls, parent: Node, key: str, *, quiet: bool = False) -> Fields:
        """An empty section reported at its parent's line, so its defaults apply."""
        return cls(Node(MappingNode(_TAG + "map", []), parent.child_path(key), parent.line,
                        parent.report), {}, quiet=quiet)

    def get(self, key: str) -> Node | None:
        node = self.children.get(key)
        return None if node is None or node.is_null else node

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def ok(self, *keys: str) -> bool:
        """None of these keys had a bad value (absent keys hold their valid default)."""
        return self.bad.isdisjoint(keys)

    def blame(self, *keys: str) -> Node:
        """The first of these keys that is set, else the mapping itself."""
        for key in keys:
            node = self.get(key)
            if node is not None:
                return node
        return self.node

    def missing(self, key: str) -> None:
        self.bad.add(key)
        if self.quiet:
            return
        node = self.children.get(key)
        if node is not None:
            node.problem("must not be empty")
        else:
            self.node.report.add(self.node.line, self.node.child_path(key), "is required")

    def opt(self, key: str, default: D, convert: Callable[[Node], V | None]) -> V | D:
        """An optional key read with `convert` (a Node getter returning None when bad)."""
        node = self.get(key)
        if node is None:
            return default
        value = convert(node)
        if value is None:
            self.bad.add(key)
            return default
        return value

    def req(self, key: str, placeholder: V, convert: Callable[[Node], V | None]) -> V:
        """A required key read with `convert` (a Node getter returning None when bad)."""
        if self.get(key) is None:
            self.missing(key)
            return placeholder
        return self.opt(key, placeholder, convert)

    def req_str(self, key: str, *, pattern: re.Pattern[str] | None = None, rule: str = "",
                numeric: bool = False, secret: bool = False) -> str:
        return self.req(key, "", lambda n: n.text(
            pattern=pattern, rule=rule, numeric=numeric, secret=secret))

    def opt_str(self, key: str, default: D, *, pattern: re.Pattern[str] | None = None,
                rule: str = "", numeric: bool = False, secret: bool = False) -> str | D:
        return self.opt(key, default, lambda n: n.text(
            pattern=pattern, rule=rule, numeric=numeric, secret=secret))

    def req_int(self, key: str, *, min: int | None = None, max: int | None = None) -> int:
        return self.req(key, 0, lambda n: n.integer(min=min, max=max))

    def opt_int(self, key: str, default: int, *, min: int | None = None,
                max: int | None = None) -> int:
        return self.opt(key, default, lambda n: n.integer(min=min, max=max))

    def opt_float(self, key: str, default: float, *, gt: float | None = None,
                  min: float | None = None, max: float | None = None) -> float:
        return self.opt(key, default, lambda n: n.number(gt=gt, min=min, max=max))

    def opt_bool(self, key: str, default: bool) -> bool:
        return self.opt(key, default, Node.boolean)

    def req_choice(self, key: str, choices: Sequence[S]) -> S:
        return self.req(key, choices[0], lambda n: n.choice(choices))

    def opt_choice(self, key: str, default: S, choices: Sequence[S]) -> S:
        return self.opt(key, default, lambda n: n.choice(choices))

    def opt_list(self, key: str) -> list[Node]:
        return self.opt(key, [], Node.items)

    def req_list(self, key: str, *, min_items: int = 1) -> list[Node]:
        if self.get(key) is None:
            self.missing(key)
            return []
        items = self.opt_list(key)
        node = self.get(key)
        if node is not None and self.ok(key) and len(items) < min_items:
            self.bad.add(key)
            node.problem("must have at least one entry" if min_items == 1
                         else f"must have at least {min_items} entries")
        return items

    def section(self, key: str, keys: Collection[str]) -> Fields:
        """A nested mapping whose keys all have defaults; absent reads as empty."""
        node = self.get(key)
        return node.fields(keys) if node is not None else Fields.absent(self.node, key)

    def opt_section(self, key: str, keys: Collection[str]) -> Fields | None:
        node = self.get(key)
        return node.fields(keys) if node is not None else None

    def req_section(self, key: str, keys: Collection[str]) -> Fields:
        node = self.get(key)
        if node is None:
            self.missing(key)
            return Fields.absent(self.node, key, quiet=True)
        return node.fields(keys)


class Unique:
    """Remembers where each value first appeared, to report repeats at the second place."""

    def __init__(self, what: str, *, secret: bool = False) -> None:
        self.what = what
        self.secret = secret
        self._first: dict[Hashable, Node] = {}

    def first(self, node: Node, value: Hashable) -> bool:
        """True if `value` is new; otherwise reports `node` as a duplicate."""
        prior = self._first.setdefault(value, node)
        if prior is node:
            return True
        label = "" if self.secret or not isinstance(value, str) else f" {shown(value)}"
        node.problem(f"duplicate {self.what}{label}, first at {prior.path} (line {prior.line})")
        return False
