"""Existing users keep working: superusers (and the first user, when there is no superuser) become Admin,
everyone else Deployer (before roles every user could deploy). The traffic history moves into the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("auth", "User")
    Membership = apps.get_model("accounts", "Membership")
    users = list(User.objects.order_by("pk"))
    has_superuser = any(u.is_superuser for u in users)
    for index, user in enumerate(users):
        admin = user.is_superuser or (index == 0 and not has_superuser)
        Membership.objects.get_or_create(user=user, defaults={"role": "admin" if admin else "deployer"})

    TrafficChange = apps.get_model("endpoints", "TrafficChange")
    AuditEntry = apps.get_model("accounts", "AuditEntry")
    for change in TrafficChange.objects.select_related("endpoint", "user").order_by("created_at", "pk"):
        entry = AuditEntry.objects.create(
            user=change.user,
            username=change.user.username if change.user else "",
            channel="system",
            action="traffic.set",
            endpoint=change.endpoint.name,
            target=f"endpoint {change.endpoint.name}",
            before={"traffic": change.traffic_before, "mirror_traffic": change.mirror_before},
            after={"traffic": change.traffic_after, "mirror_traffic": change.mirror_after},
        )
        AuditEntry.objects.filter(pk=entry.pk).update(created_at=change.created_at)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("endpoints", "0003_instancetype"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
