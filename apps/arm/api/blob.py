"""The few Blob Storage operations azure-ai-ml's uploads make, answered by the studio itself.

HEAD blob, PUT blob, PUT ?comp=block, PUT ?comp=blocklist, PUT ?comp=metadata; each checked against a SAS the
studio issued (apps/arm/sas.py). No login and no CSRF: the SAS is the credential. Errors are Azure Storage's
(`x-ms-error-code` and an XML body), which the SDK reads.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ElementTree
from email.utils import format_datetime
from xml.sax.saxutils import escape

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.arm import blobs, sas
from apps.core.errors import ApplicationError

MAX_BLOCK_LIST_BYTES = 4 * 1024 * 1024
STORAGE_VERSION = "2021-08-06"


def _headers(response: HttpResponse, etag: str | None = None) -> HttpResponse:
    response["x-ms-request-id"] = str(uuid.uuid4())
    response["x-ms-version"] = STORAGE_VERSION
    response["Date"] = format_datetime(timezone.now(), usegmt=True)
    if etag:
        response["ETag"] = etag
        response["Last-Modified"] = response["Date"]
    return response


def _error(status: int, code: str, message: str, *, head: bool) -> HttpResponse:
    body = (
        ""
        if head
        else '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    response = HttpResponse(body, status=status, content_type="application/xml")
    response["x-ms-error-code"] = code
    return _headers(response)


def _block_ids(request: HttpRequest) -> list[str]:
    length = int(request.headers.get("Content-Length") or 0)
    if length > MAX_BLOCK_LIST_BYTES:
        raise ApplicationError(f"BlockList: larger than {MAX_BLOCK_LIST_BYTES} bytes", field="InvalidXmlDocument")
    text = request.read(MAX_BLOCK_LIST_BYTES + 1)
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise ApplicationError("BlockList: document types and entities are not accepted", field="InvalidXmlDocument")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ApplicationError(f"BlockList: not valid XML ({exc})", field="InvalidXmlDocument") from None
    if root.tag != "BlockList":
        raise ApplicationError(f"BlockList: expected <BlockList>, got <{root.tag}>", field="InvalidXmlDocument")
    return [(item.text or "").strip() for item in root if item.tag in ("Latest", "Uncommitted", "Committed")]


@csrf_exempt
def blob(request: HttpRequest, account: str, container: str, blob: str) -> HttpResponse:
    """One blob of the studio's blob store."""
    head = request.method == "HEAD"
    comp = request.GET.get("comp", "")
    try:
        sas.sas_check(query=request.META.get("QUERY_STRING", ""), container=container, blob=blob)
        blobs.check_name(container, blob)
        if request.method in ("HEAD", "GET") and not comp:
            props = blobs.blob_properties(container=container, blob=blob)
            if props is None:
                return _error(404, "BlobNotFound", f"blob {container}/{blob} does not exist", head=head)
            if not head:
                return _error(
                    403, "AuthorizationPermissionMismatch", "this SAS allows uploads, not downloads", head=head
                )
            response = _headers(HttpResponse(status=200, content_type="application/octet-stream"), props.etag)
            response["Content-Length"] = str(props.size)
            response["Last-Modified"] = format_datetime(props.modified, usegmt=True)
            response["x-ms-blob-type"] = "BlockBlob"
            response["x-ms-creation-time"] = response["Last-Modified"]
            response["x-ms-lease-state"] = "available"
            response["x-ms-lease-status"] = "unlocked"
            response["x-ms-server-encrypted"] = "false"
            for key, value in props.metadata.items():
                response[f"x-ms-meta-{key}"] = value
            return response
        if request.method != "PUT":
            return _error(405, "UnsupportedHttpVerb", f"{request.method} is not supported here", head=head)
        if comp == "block":
            blobs.block_put(container=container, blob=blob, block_id=request.GET.get("blockid", ""), stream=request)
            return _headers(HttpResponse(status=201))
        if comp == "blocklist":
            etag = blobs.block_list_commit(container=container, blob=blob, block_ids=_block_ids(request))
            return _headers(HttpResponse(status=201), etag)
        if comp == "metadata":
            # Azure's metadata names are identifiers (letters, digits, '_'), so META's upper-cased form is exact.
            prefix = "HTTP_X_MS_META_"
            metadata = {
                key[len(prefix) :].lower(): str(value) for key, value in request.META.items() if key.startswith(prefix)
            }
            etag = blobs.metadata_set(container=container, blob=blob, metadata=metadata)
            return _headers(HttpResponse(status=200), etag)
        if comp:
            return _error(400, "UnsupportedQueryParameter", f"comp={comp} is not supported here", head=head)
        if request.headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
            return _error(400, "InvalidHeaderValue", "x-ms-blob-type: only BlockBlob is supported", head=head)
        return _headers(HttpResponse(status=201), blobs.blob_put(container=container, blob=blob, stream=request))
    except sas.SasRefused as exc:
        return _error(403, exc.code, exc.message, head=head)
    except ApplicationError as exc:
        code = (
            exc.field
            if exc.field and exc.field[:1].isupper()
            else ("BlobNotFound" if exc.status == 404 else "InvalidInput")
        )
        return _error(exc.status, code, exc.message, head=head)
