"""The instance-type catalog moves here from apps.costs (which keeps the prices): the table, seeded.

A database that had the catalog in costs gets its own rows (and edited prices) copied over by
costs' 0004_instanceprice, which runs after this one.
"""

from decimal import Decimal

from django.db import migrations, models

from apps.endpoints.catalog import CATALOG


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    """The seeded catalog; a row already there is left as it is."""
    InstanceType = apps.get_model("endpoints", "InstanceType")
    for name, vcpus, memory, gpus, gpu_model in CATALOG:
        InstanceType.objects.get_or_create(
            name=name,
            defaults={"vcpus": vcpus, "memory_gib": Decimal(memory), "gpus": gpus, "gpu_model": gpu_model},
        )


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0002_endpoint_local")]

    operations = [
        migrations.CreateModel(
            name="InstanceType",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=64, unique=True)),
                ("vcpus", models.PositiveIntegerField()),
                ("memory_gib", models.DecimalField(decimal_places=2, max_digits=8)),
                ("gpus", models.PositiveIntegerField(default=0)),
                ("gpu_model", models.CharField(blank=True, max_length=32)),
            ],
            options={"ordering": ["gpus", "vcpus", "name"]},
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
