"""functions/statuses.py says the same as the CHECK constraints of the migrations."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from functions import statuses

MIGRATIONS = Path(__file__).resolve().parents[2] / "functions" / "db" / "migrations"
SQL = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))


def check_values(table: str, column: str) -> set[str]:
    """The values of the last CHECK (column IN (...)) declared for ``table.column``."""
    found: list[set[str]] = []
    for block in re.finditer(r"CREATE TABLE (\w+) \((.*?)\n\);", SQL, re.S):
        if block.group(1) == table:
            pattern = rf"^\s*{column}\s.*?CHECK \({column} IN \(([^)]*)\)\)"
            for m in re.finditer(pattern, block.group(2), re.M):
                found.append(set(re.findall(r"'([^']*)'", m.group(1))))
    for m in re.finditer(rf"ALTER TABLE {table} ADD CONSTRAINT \w+ CHECK \({column} IN \(([^)]*)\)\)", SQL):
        found.append(set(re.findall(r"'([^']*)'", m.group(1))))
    assert found, f"no CHECK for {table}.{column}"
    return found[-1]


@pytest.mark.parametrize(
    "literal, table, column",
    [
        (statuses.EmailStatus, "inbound_emails", "status"),
        (statuses.EmailMode, "inbound_emails", "mode"),
        (statuses.ImageStatus, "images", "status"),
        (statuses.TakenAtSource, "images", "taken_at_source"),
        (statuses.AlertKind, "alerts", "kind"),
        (statuses.ChannelPurpose, "channels", "purpose"),
        (statuses.DeliveryStatus, "deliveries", "status"),
        (statuses.PoisonStatus, "poison_records", "status"),
        (statuses.SuppressionStatus, "suppressions", "status"),
        (statuses.HealthCondition, "camera_health", "condition"),
        (statuses.HealthStatus, "camera_health", "status"),
        (statuses.FeedbackVerdict, "feedback", "verdict"),
        (statuses.AuditVia, "audit_log", "via"),
    ],
)
def test_literal_matches_the_check_constraint(literal, table, column):
    assert set(typing.get_args(literal)) == check_values(table, column)


def test_attachment_statuses_are_image_statuses():
    assert set(typing.get_args(statuses.AttachmentStatus)) <= set(typing.get_args(statuses.ImageStatus))
