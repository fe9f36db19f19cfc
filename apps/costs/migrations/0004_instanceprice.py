"""Prices get their own table (`InstancePrice`, by instance-type name): the catalog moved to apps.endpoints.

Every row of the old costs.InstanceType is copied, as this database holds it, into endpoints.InstanceType
(its size) and InstancePrice (its price, edited or not), then the old table is dropped. Backwards, the
old table is filled again from both.
"""

from decimal import Decimal

from django.db import migrations, models

from apps.costs.prices import LIST_PRICES


def seed_prices(apps, schema_editor):  # type: ignore[no-untyped-def]
    """List prices for the catalog's sizes that have no price yet."""
    InstanceType = apps.get_model("endpoints", "InstanceType")
    InstancePrice = apps.get_model("costs", "InstancePrice")
    priced = set(InstancePrice.objects.values_list("instance_type", flat=True))
    for name in InstanceType.objects.exclude(name__in=priced).values_list("name", flat=True):
        if name in LIST_PRICES:
            InstancePrice.objects.create(instance_type=name, price_per_hour=Decimal(LIST_PRICES[name]))


def move_prices(apps, schema_editor):  # type: ignore[no-untyped-def]
    OldInstanceType = apps.get_model("costs", "InstanceType")
    InstanceType = apps.get_model("endpoints", "InstanceType")
    InstancePrice = apps.get_model("costs", "InstancePrice")
    for row in OldInstanceType.objects.all():
        InstanceType.objects.update_or_create(
            name=row.name,
            defaults={"vcpus": row.vcpus, "memory_gib": row.memory_gib, "gpus": row.gpus, "gpu_model": row.gpu_model},
        )
        InstancePrice.objects.update_or_create(instance_type=row.name, defaults={"price_per_hour": row.price_per_hour})
    seed_prices(apps, schema_editor)


def prices_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    OldInstanceType = apps.get_model("costs", "InstanceType")
    InstanceType = apps.get_model("endpoints", "InstanceType")
    InstancePrice = apps.get_model("costs", "InstancePrice")
    prices = dict(InstancePrice.objects.values_list("instance_type", "price_per_hour"))
    for row in InstanceType.objects.all():
        OldInstanceType.objects.update_or_create(
            name=row.name,
            defaults={
                "vcpus": row.vcpus,
                "memory_gib": row.memory_gib,
                "gpus": row.gpus,
                "gpu_model": row.gpu_model,
                "price_per_hour": prices.get(row.name, Decimal(0)),
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("costs", "0003_autoscalesetting"),
        ("endpoints", "0003_instancetype"),
    ]

    operations = [
        migrations.CreateModel(
            name="InstancePrice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("instance_type", models.CharField(max_length=64, unique=True)),
                ("price_per_hour", models.DecimalField(decimal_places=4, max_digits=10)),
            ],
            options={"ordering": ["instance_type"]},
        ),
        migrations.RunPython(move_prices, prices_back),
        migrations.DeleteModel(name="InstanceType"),
    ]
