"""The `recording` section: where call recordings go, in what form, how long they are
kept, and the default policy; hotlines, queues and outbound rules may set their own
`record:` policy (always | never | on_demand)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from acd.yamlsource import Fields, Node

__all__ = ["POLICIES", "RecordPolicy", "RecordingConfig", "record_policy", "recording"]

RecordPolicy = Literal["always", "never", "on_demand"]
POLICIES: tuple[RecordPolicy, ...] = ("always", "never", "on_demand")
TEMPLATE_FIELDS = frozenset(
    ("date", "time", "call", "from", "to", "hotline", "queue", "agent", "direction"))


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    dir: Path = Path("recordings")  # relative to the daemon's working directory
    format: Literal["stereo", "mono"] = "stereo"  # stereo: caller left, agent right
    template: str = "{date}/{time}-{call}.wav"
    retention_days: int = 0  # 0: keep for ever
    default: RecordPolicy = "never"


def record_policy(node: Node) -> RecordPolicy | None:
    return node.choice(POLICIES)


def recording(f: Fields) -> RecordingConfig:
    d = RecordingConfig()
    template = f.opt_str("template", d.template)
    if f.ok("template"):
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError as exc:
            f.blame("template").problem(f"is not a valid template: {exc}")
        else:
            unknown = names - TEMPLATE_FIELDS
            if unknown:
                f.blame("template").problem(
                    f"unknown field(s) {', '.join(sorted(unknown))}; use "
                    f"{', '.join(sorted(TEMPLATE_FIELDS))}")
            elif not template.endswith(".wav") or re.search(r"(^|/)\.\.(/|$)", template) \
                    or template.startswith("/"):
                f.blame("template").problem("must be a relative path ending in .wav, "
                                            "without '..'")
    return RecordingConfig(
        dir=Path(f.opt_str("dir", str(d.dir))),
        format=f.opt_choice("format", d.format, ("stereo", "mono")),
        template=template,
        retention_days=f.opt_int("retention_days", d.retention_days, min=0, max=36500),
        default=f.opt_choice("default", d.default, POLICIES),
    )
