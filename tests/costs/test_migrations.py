"""A studio database made before the catalog moved to apps.endpoints migrates with its rows and edited prices.

Run with Django's own migration executor on the test database: back to where the catalog lived in costs
(with prices in the same rows), a price edited and a size added there, then forward to today's schema.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.costs import selectors
from apps.endpoints import catalog
from tests.migrations import migrate

BEFORE_THE_MOVE = [("costs", "0003_autoscalesetting"), ("endpoints", "0002_endpoint_local")]


@pytest.mark.django_db(transaction=True)
def test_the_catalog_moves_to_endpoints_keeping_edited_prices(latest: list[tuple[str, str]]) -> None:
    before = migrate(BEFORE_THE_MOVE).loader.project_state(BEFORE_THE_MOVE).apps
    OldInstanceType = before.get_model("costs", "InstanceType")
    assert OldInstanceType.objects.get(name="Standard_DS2_v2").price_per_hour == Decimal("0.1460")
    OldInstanceType.objects.filter(name="Standard_DS2_v2").update(price_per_hour=Decimal("0.2000"))
    OldInstanceType.objects.create(
        name="Custom_D8", vcpus=8, memory_gib=Decimal("32"), gpus=0, gpu_model="", price_per_hour=Decimal("1.2500")
    )

    migrate(latest)

    assert catalog.instance_types_list().count() == 20
    custom = catalog.instance_type_get(name="Custom_D8")
    assert (custom.vcpus, custom.memory_gib, custom.gpus) == (8, Decimal("32"), 0)
    assert catalog.instance_type_get(name="Standard_NC12s_v3").gpus == 2
    prices = selectors.instance_type_prices()
    assert prices["Standard_DS2_v2"] == Decimal("0.2000")  # the edit survived
    assert prices["Custom_D8"] == Decimal("1.2500")
    assert prices["Standard_DS3_v2"] == Decimal("0.2930")  # the others keep their list price
    assert len(prices) == 20


@pytest.mark.django_db
def test_a_new_database_has_every_size_of_the_catalog_at_its_list_price() -> None:
    # The test database was made by running every migration, as `studio up` does on a new STUDIO_HOME.
    names = [row.name for row in catalog.instance_types_list()]
    prices = selectors.instance_type_prices()

    assert names[:4] == ["Standard_DS1_v2", "Standard_DS2_v2", "Standard_E2s_v3", "Standard_F2s_v2"]
    assert sorted(prices) == sorted(names) and len(names) == 19
    assert prices["Standard_NC24ads_A100_v4"] == Decimal("3.6730")
