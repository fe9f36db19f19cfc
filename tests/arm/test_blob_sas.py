"""The studio's own blob endpoint: a SAS reaches one upload only, for a short time; blocks join byte for byte."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import time_machine

from tests.arm.conftest import STORE, WS


def pending_upload(arm: Any) -> tuple[str, str]:
    """(blob folder path, SAS) of a fresh `startPendingUpload`."""
    response = arm.post(f"{WS}/codes/c1/versions/1/startPendingUpload", {}, format="json")
    assert response.status_code == 200, response.content
    url = urlsplit(response.json()["blobReferenceForConsumption"]["credential"]["sasUri"])
    return url.path, url.query


def datastore_sas(arm: Any) -> str:
    response = arm.post(f"{WS}/datastores/workspaceblobstore/listSecrets", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["secretsType"] == "Sas"
    return str(response.json()["sasToken"])


def put(client: Any, path: str, sas: str, body: bytes, **query: str) -> Any:
    extra = f"&{urlencode(query)}" if query else ""
    return client.generic(
        "PUT", f"{path}?{sas}{extra}", body, content_type="application/octet-stream", HTTP_X_MS_BLOB_TYPE="BlockBlob"
    )


def head(client: Any, path: str, sas: str) -> Any:
    return client.head(f"{path}?{sas}")


def test_a_pending_upload_sas_writes_its_own_folder_and_nothing_else(arm: Any, client: Any) -> None:
    folder, sas = pending_upload(arm)
    other_folder, _ = pending_upload(arm)
    assert put(client, f"{folder}/code/score.py", sas, b"def run(x): return x").status_code == 201
    own = head(client, f"{folder}/code/score.py", sas)
    assert own.status_code == 200 and own["Content-Length"] == "20"

    for path in (f"{other_folder}/code/score.py", f"{STORE}/LocalUpload/abc/model.pkl", f"{STORE}/score.py"):
        refused = put(client, path, sas, b"x")
        assert refused.status_code == 403, path
        assert refused["x-ms-error-code"] == "AuthenticationFailed"
        assert b"the shared access signature is for" in refused.content or b"upload goes into" in refused.content
        assert head(client, path, sas).status_code == 403
    other_container = folder.replace("/studio-blobstore/", "/another-container/")
    assert put(client, f"{other_container}/code/score.py", sas, b"x").status_code == 403
    # Upload only: even its own blob cannot be read back.
    assert client.get(f"{folder}/code/score.py?{sas}").status_code == 403


def test_a_datastore_sas_binds_to_the_first_upload_folder_it_is_used_for(arm: Any, client: Any) -> None:
    sas = datastore_sas(arm)
    assert head(client, f"{STORE}/LocalUpload/aaa/model.pkl", sas).status_code == 404  # the SDK's first look
    assert put(client, f"{STORE}/LocalUpload/aaa/model.pkl", sas, b"weights").status_code == 201
    refused = put(client, f"{STORE}/LocalUpload/bbb/model.pkl", sas, b"weights")
    assert refused.status_code == 403
    assert b"for studio-blobstore/LocalUpload/aaa/" in refused.content
    assert head(client, f"{STORE}/LocalUpload/bbb/model.pkl", sas).status_code == 403
    # Another SAS cannot write into the folder the first one holds.
    second = datastore_sas(arm)
    assert put(client, f"{STORE}/LocalUpload/aaa/model.pkl", second, b"evil").status_code == 403
    assert head(client, f"{STORE}/LocalUpload/aaa/model.pkl", sas)["Content-Length"] == "7"


def test_an_expired_sas_is_refused(arm: Any, client: Any, settings: Any) -> None:
    settings.STUDIO_SAS_LIFETIME_S = 60
    folder, sas = pending_upload(arm)
    assert put(client, f"{folder}/a.txt", sas, b"in time").status_code == 201
    with time_machine.travel(time.time() + 61, tick=False):
        refused = put(client, f"{folder}/b.txt", sas, b"too late")
    assert refused.status_code == 403
    assert b"expired at" in refused.content


def test_a_changed_or_missing_signature_is_refused(arm: Any, client: Any) -> None:
    folder, sas = pending_upload(arm)
    params = {key: values[0] for key, values in parse_qs(sas).items()}
    later = {**params, "se": "2099-01-01T00:00:00Z"}
    assert put(client, f"{folder}/a.txt", urlencode(later), b"x").status_code == 403
    wider = {**params, "sr": "c"}
    assert put(client, f"{folder}/a.txt", urlencode(wider), b"x").status_code == 403
    missing = client.generic("PUT", f"{folder}/a.txt", b"x")
    assert missing.status_code == 403 and missing["x-ms-error-code"] == "NoAuthenticationInformation"


def test_blocks_are_joined_in_the_listed_order_and_metadata_is_read_back(arm: Any, client: Any, settings: Any) -> None:
    folder, sas = pending_upload(arm)
    blob = f"{folder}/model/weights.bin"
    ids = [base64.b64encode(f"block-{n:05d}".encode()).decode() for n in range(3)]
    parts = [b"first-", b"second-", b"third"]
    for block_id, part in zip(ids, parts, strict=True):
        assert put(client, blob, sas, part, comp="block", blockid=block_id).status_code == 201
    assert head(client, blob, sas).status_code == 404  # not committed yet
    listing = "".join(f"<Latest>{block_id}</Latest>" for block_id in [ids[1], ids[0], ids[2]])
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'.encode()
    assert put(client, blob, sas, body, comp="blocklist").status_code == 201
    assert head(client, blob, sas)["Content-Length"] == str(len(b"second-first-third"))
    stored = Path(settings.MEDIA_ROOT) / "blobs" / "data" / blob.removeprefix("/azure/storage/studio.blob.local/")
    assert stored.read_bytes() == b"second-first-third"
    metadata = client.generic("PUT", f"{blob}?{sas}&comp=metadata", b"", HTTP_X_MS_META_UPLOAD_STATUS="completed")
    assert metadata.status_code == 200
    assert head(client, blob, sas)["x-ms-meta-upload_status"] == "completed"

    missing = f"<BlockList><Latest>{base64.b64encode(b'never-sent').decode()}</Latest></BlockList>".encode()
    refused = put(client, blob, sas, missing, comp="blocklist")
    assert refused.status_code == 400 and b"was not uploaded" in refused.content
    hostile = b'<!DOCTYPE x [<!ENTITY a "b">]><BlockList><Latest>&a;</Latest></BlockList>'
    assert put(client, blob, sas, hostile, comp="blocklist").status_code == 400
