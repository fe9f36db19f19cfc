from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.endpoints.models import InstanceType


@pytest.mark.django_db
def test_catalog_is_seeded_with_azure_sizes_and_gpu_types() -> None:
    names = set(InstanceType.objects.values_list("name", flat=True))
    assert {"Standard_DS1_v2", "Standard_DS5_v2", "Standard_F16s_v2", "Standard_E16s_v3", "Standard_NC6s_v3"} <= names
    assert InstanceType.objects.get(name="Standard_NC4as_T4_v3").gpus == 1


def test_redis_cache_round_trips_a_value() -> None:
    cache.set("smoke", "ok", 5)
    assert cache.get("smoke") == "ok"


def test_livez_answers_without_login(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.content == b"ok"
