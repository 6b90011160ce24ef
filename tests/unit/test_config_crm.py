"""Tests of the `crm` section: the retention of the CRM consumer's working tables
(defaults, accepted values, and each problem's exact `file:line: key: reason`)."""

from __future__ import annotations

import pytest

from acd.config import CrmSettings, changed_sections, load_config
from tests.unit.test_config import BASE, DEMO, base, errors, load


def test_demo_and_default_retention() -> None:
    assert load_config(DEMO).crm == CrmSettings(event_retention_days=30)
    assert load(BASE).crm.event_retention_days == 30
    assert load(base("crm: {}\n")).crm.event_retention_days == 30
    assert load(base("crm:\n")).crm.event_retention_days == 30  # null reads as absent


@pytest.mark.parametrize("days", [0, 1, 7, 400, 36500])
def test_valid_retention(days: int) -> None:
    assert load(base(f"crm:\n  event_retention_days: {days}\n")).crm.event_retention_days \
        == days


@pytest.mark.parametrize(("value", "reason"), [
    ("-1", "must be between 0 and 36500, got -1"),
    ("36501", "must be between 0 and 36500, got 36501"),
    ("1.5", "must be an integer, got a number"),
    ("thirty", "must be an integer, got a string"),
    ('"30"', "must be an integer, got a string"),
    ("true", "must be an integer, got a boolean"),
    ("[30]", "must be an integer, got a list"),
    ("030", "must be a plain decimal number (no leading zeros or ':'), got '030'"),
])
def test_bad_retention(value: str, reason: str) -> None:
    assert errors(base(f"node_id: a\ncrm:\n  event_retention_days: {value}\n")) == [
        f"t.yaml:6: crm.event_retention_days: {reason}"]


def test_crm_section_problems() -> None:
    assert errors(base("crm:\n  retention_days: 30\n")) == [
        "t.yaml:5: crm.retention_days: unknown key, did you mean 'event_retention_days'?"]
    assert errors(base("crm: 30\n")) == ["t.yaml:4: crm: must be a mapping, got an integer"]


def test_reload_sees_a_changed_retention() -> None:
    old = load(base("crm:\n  event_retention_days: 30\n"))
    new = load(base("crm:\n  event_retention_days: 7\n"))
    assert changed_sections(old, new) == ("crm",)
