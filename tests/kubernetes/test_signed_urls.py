"""Signed download tokens for the storage initializer."""

from __future__ import annotations

import pytest
import time_machine

from apps.core.errors import ApplicationError
from apps.endpoints.backends.signed_urls import sign_download, verify_download


def test_a_token_names_what_it_grants() -> None:
    token = sign_download("model", "azureml:sklearn-model:3", ttl_s=600)
    assert verify_download(token, max_age_s=3600) == ("model", "azureml:sklearn-model:3")


def test_a_token_is_url_safe() -> None:
    token = sign_download("code", "0b7e5a39-6a0e-4f3c-9a51-1d6d3c2b9f10", ttl_s=600)
    assert all(char.isalnum() or char in "-_:." for char in token)


def test_a_token_expires_after_its_own_ttl() -> None:
    with time_machine.travel("2025-01-01 12:00:00", tick=False) as clock:
        token = sign_download("model", "azureml:m:1", ttl_s=60)
        clock.shift(61)
        with pytest.raises(ApplicationError, match="download token: expired") as error:
            verify_download(token, max_age_s=3600)
    assert error.value.status == 403


def test_the_server_ceiling_caps_a_long_ttl() -> None:
    with time_machine.travel("2025-01-01 12:00:00", tick=False) as clock:
        token = sign_download("model", "azureml:m:1", ttl_s=86400)
        clock.shift(601)
        with pytest.raises(ApplicationError, match="expired"):
            verify_download(token, max_age_s=600)


def test_a_tampered_token_is_refused() -> None:
    token = sign_download("model", "azureml:m:1", ttl_s=600)
    forged = sign_download("model", "azureml:other:1", ttl_s=600)
    tampered = forged.split(":", 1)[0] + ":" + token.split(":", 1)[1]
    with pytest.raises(ApplicationError, match="invalid signature"):
        verify_download(tampered, max_age_s=600)


def test_a_token_signed_for_another_purpose_is_refused() -> None:
    from django.core import signing

    other = signing.TimestampSigner(salt="something-else").sign_object({"k": "model", "i": "x", "t": 600})
    with pytest.raises(ApplicationError, match="invalid signature"):
        verify_download(other, max_age_s=600)


def test_an_unknown_kind_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="download kind must be one of model, code, got 'env'"):
        sign_download("env", "x", ttl_s=60)  # type: ignore[arg-type]


def test_manifest_options_carry_download_urls_the_studio_accepts(settings: object) -> None:
    from apps.endpoints.backends.manifests import options_from_settings
    from tests.kubernetes.specs import make_spec

    settings.STUDIO_PUBLIC_URL = "https://studio.example.com"  # type: ignore[attr-defined]
    settings.STUDIO_KUBE_NAMESPACE = "ml"  # type: ignore[attr-defined]
    spec = make_spec()

    options = options_from_settings(spec, ttl_s=900)

    assert options.namespace == "ml"
    prefix = "https://studio.example.com/api/v1/downloads/"
    assert options.model_url.startswith(prefix) and options.code_url.startswith(prefix)
    assert verify_download(options.model_url.removeprefix(prefix), max_age_s=3600) == ("model", spec.model_asset)
    assert verify_download(options.code_url.removeprefix(prefix), max_age_s=3600) == ("code", spec.uid)
