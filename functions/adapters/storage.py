"""Blob Storage and Storage queues (official Azure SDK), the same code against Azurite and Azure.

Queue messages are written base64-encoded (TextBase64EncodePolicy), the encoding the Functions host
expects with host.json `messageEncoding: base64`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, ContentSettings, generate_blob_sas
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.queue import ExponentialRetry as QueueRetry
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)
from pydantic import BaseModel

from .. import names

log = logging.getLogger(__name__)

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(blob_port: int, queue_port: int, host: str = "127.0.0.1") -> str:
    """Connection string for an Azurite on the given ports (the well-known development account)."""
    return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://{host}:{blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT};")


class StorageUnavailable(RuntimeError):
    """Blob Storage or the queues could not be reached; the operation may succeed later."""


TRANSIENT_STORAGE_ERRORS = (ServiceRequestError, ServiceResponseError)


@dataclass(frozen=True)
class StoredBlob:
    container: str
    name: str
    created: bool  # False when an identical blob of that name was already there


def _client_options(queue: bool) -> dict:
    """Fail fast enough for a webhook: the SDK's default retry (15 s, 18 s, 24 s...) takes over a minute to
    give up on an unreachable account, longer than SendGrid or a queue invocation should wait. Three quick
    retries, then StorageUnavailable (5xx to SendGrid, or a retried message)."""
    retry = (QueueRetry if queue else BlobRetry)(initial_backoff=0.5, increment_base=1.5, retry_total=2,
                                                 random_jitter_range=0.5)
    # use_env_settings=False: the storage account is reached directly (no HTTP proxy in Azure Functions or
    # toward a local Azurite), and with env settings on, `requests` re-reads the process environment, the
    # netrc file and the CA bundle path on *every* request: ~15% of the host's CPU in the e2e profile.
    return {"retry_policy": retry, "connection_timeout": 3, "read_timeout": 30, "use_env_settings": False}


class Storage:
    """Blob containers and queues of one storage account."""

    def __init__(self, connection_string: str | None = None, account_name: str | None = None,
                 credential=None):
        if connection_string:
            self.blobs = BlobServiceClient.from_connection_string(connection_string, **_client_options(False))
            self._queue_service = QueueServiceClient.from_connection_string(connection_string,
                                                                            **_client_options(True))
            self._conn = connection_string
        elif account_name:
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            self.blobs = BlobServiceClient(f"https://{account_name}.blob.core.windows.net", credential,
                                           **_client_options(False))
            self._queue_service = QueueServiceClient(f"https://{account_name}.queue.core.windows.net",
                                                     credential, **_client_options(True))
            self._conn = None
        else:
            raise ValueError("a connection string or an account name is required")
        self._credential = credential
        self._queues: dict[tuple[str, bool], QueueClient] = {}

    # -- queues -------------------------------------------------------------------------------------
    def queue(self, name: str, *, encoded: bool = True) -> QueueClient:
        """A client of queue ``name``; ``encoded`` applies the base64 text policies of the Functions host."""
        key = (name, encoded)
        client = self._queues.get(key)
        if client is None:
            kwargs = {}
            if encoded:
                kwargs = {"message_encode_policy": TextBase64EncodePolicy(),
                          "message_decode_policy": TextBase64DecodePolicy()}
            client = self._queue_service.get_queue_client(name, **kwargs)
            self._queues[key] = client
        return client

    def enqueue(self, queue: str, message: BaseModel | str, *, visibility_timeout: int | None = None) -> str:
        """Put one message (a pydantic model as JSON, or text) on ``queue``; return its message id."""
        text = message if isinstance(message, str) else message.model_dump_json()
        try:
            sent = self.queue(queue).send_message(text, visibility_timeout=visibility_timeout)
        except TRANSIENT_STORAGE_ERRORS as exc:
            raise StorageUnavailable(f"queue {queue} unreachable: {exc}") from exc
        return sent.id

    def queue_depth(self, queue: str) -> int:
        try:
            return int(self.queue(queue).get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0

    # -- blobs --------------------------------------------------------------------------------------
    def put_blob(self, container: str, name: str, data: bytes, *, content_type: str,
                 metadata: dict[str, str] | None = None) -> StoredBlob:
        """Write a blob once: a second write of the same name keeps the first (names are content hashes)."""
        client = self.blobs.get_blob_client(container, name)
        try:
            client.upload_blob(data, overwrite=False, metadata=_ascii_metadata(metadata or {}),
                               content_settings=ContentSettings(content_type=content_type))
            return StoredBlob(container, name, True)
        except ResourceExistsError:
            return StoredBlob(container, name, False)
        except TRANSIENT_STORAGE_ERRORS as exc:
            raise StorageUnavailable(f"blob storage unreachable: {exc}") from exc

    def get_blob(self, container: str, name: str) -> bytes:
        try:
            return self.blobs.get_blob_client(container, name).download_blob().readall()
        except TRANSIENT_STORAGE_ERRORS as exc:
            raise StorageUnavailable(f"blob storage unreachable: {exc}") from exc

    def blob_url(self, container: str, name: str, *, hours: int) -> str:
        """A read-only link to a blob that expires in ``hours`` (account SAS locally, user delegation in Azure)."""
        client = self.blobs.get_blob_client(container, name)
        start = datetime.now(timezone.utc) - timedelta(minutes=5)
        expiry = datetime.now(timezone.utc) + timedelta(hours=hours)
        account = self.blobs.account_name
        if self._conn is not None:
            key = self.blobs.credential.account_key
            sas = generate_blob_sas(account, container, name, account_key=key,
                                    permission=BlobSasPermissions(read=True), start=start, expiry=expiry)
        else:
            delegation_key = self.blobs.get_user_delegation_key(start, expiry)
            sas = generate_blob_sas(account, container, name, user_delegation_key=delegation_key,
                                    permission=BlobSasPermissions(read=True), start=start, expiry=expiry)
        return f"{client.url}?{sas}"

    # -- set-up -------------------------------------------------------------------------------------
    def ensure_resources(self, queues=names.ALL_QUEUES, containers=names.ALL_CONTAINERS) -> None:
        """Create the containers and queues the app uses (idempotent)."""
        for container in containers:
            try:
                self.blobs.create_container(container)
            except ResourceExistsError:
                pass
        for queue in queues:
            try:
                self._queue_service.create_queue(queue)
            except ResourceExistsError:
                pass


def _ascii_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Blob metadata travels in HTTP headers: keep it ASCII."""
    return {k: str(v).encode("ascii", "replace").decode("ascii") for k, v in metadata.items()}
