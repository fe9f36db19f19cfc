from __future__ import annotations

from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.costs.catalog import CATALOG

    InstanceType = apps.get_model("costs", "InstanceType")
    for name, vcpus, memory, gpus, gpu_model, price in CATALOG:
        InstanceType.objects.update_or_create(
            name=name,
            defaults={
                "vcpus": vcpus,
                "memory_gib": Decimal(memory),
                "gpus": gpus,
                "gpu_model": gpu_model,
                "price_per_hour": Decimal(price),
            },
        )


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
