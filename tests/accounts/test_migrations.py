"""A studio database from before roles keeps its traffic history: the old TrafficChange rows become audit entries,
then the table is dropped (endpoints 0007 runs after accounts 0002 copied them)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.accounts.models import AuditEntry
from tests.migrations import migrate

BEFORE_ROLES = [("accounts", "0001_initial"), ("endpoints", "0006_environment_conda_text")]


@pytest.mark.django_db(transaction=True)
def test_old_traffic_changes_become_audit_entries_and_their_table_is_dropped(latest: list[tuple[str, str]]) -> None:
    before = migrate(BEFORE_ROLES).loader.project_state(BEFORE_ROLES).apps
    Endpoint = before.get_model("endpoints", "Endpoint")
    TrafficChange = before.get_model("endpoints", "TrafficChange")
    user = before.get_model("auth", "User").objects.create(username="old-operator")
    endpoint = Endpoint.objects.create(name="ep-old", primary_key="p" * 32, secondary_key="s" * 32)
    TrafficChange.objects.create(
        endpoint=endpoint, user=user, traffic_before={"blue": 100}, traffic_after={"blue": 90, "green": 10}
    )
    assert "endpoints_trafficchange" in connection.introspection.table_names()

    migrate(latest)

    entry = AuditEntry.objects.get(action="traffic.set", endpoint="ep-old")
    assert entry.username == "old-operator"
    assert entry.before["traffic"] == {"blue": 100}
    assert entry.after["traffic"] == {"blue": 90, "green": 10}
    assert "endpoints_trafficchange" not in connection.introspection.table_names()
