"""The storage adapter against the real Azurite: what the rest of the pipeline relies on."""

from __future__ import annotations

from functions import names
from functions.adapters.storage import Storage


def test_blobs_and_queues_do_not_go_through_an_environment_proxy(azurite, monkeypatch):
    # The storage account is reached directly; the clients do not re-read the environment per request
    # (requests does, with env settings on: proxies, netrc, CA bundle path). A proxy variable pointing at
    # nothing would break every call if they did.
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    storage = Storage(connection_string=azurite.connection_string)
    storage.ensure_resources(queues=("proxy-test",), containers=(names.IMAGES_CONTAINER,))
    storage.put_blob(names.IMAGES_CONTAINER, "proxy-test/a.jpg", b"\xff\xd8x\xff\xd9",
                     content_type="image/jpeg")
    assert storage.get_blob(names.IMAGES_CONTAINER, "proxy-test/a.jpg") == b"\xff\xd8x\xff\xd9"
    assert storage.enqueue("proxy-test", "hello")
    assert storage.queue_depth("proxy-test") == 1
