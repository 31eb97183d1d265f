"""API keys from Secret Manager, against a fake client (no Secret Manager emulator
exists) that records each request and answers with the library's own response types;
the request must also build the library's real ``AccessSecretVersionRequest``. Rotation
(a new secret version) is picked up by a running gate without a restart; a corrupted
payload (CRC32C) or a broken document keeps the last good keys."""

from __future__ import annotations

import json
import threading

import google_crc32c
import orjson
import pytest
from google.cloud import secretmanager_v1

from simrec.config import Settings
from simrec.serving import access
from simrec.serving.api import ServingApp
from tests.clock import FakeClock

SECRET = "projects/shop-project/secrets/simrec-api-keys"


class FakeSecretManagerClient:
    """``SecretManagerServiceClient.access_secret_version`` over an in-memory list of
    versions (the last one is ``latest``)."""

    def __init__(self, *payloads: bytes) -> None:
        self.versions = list(payloads)
        self.requests: list[dict] = []
        self.corrupt = False

    def add_version(self, payload: bytes) -> None:
        self.versions.append(payload)

    def access_secret_version(self, request: dict) -> secretmanager_v1.AccessSecretVersionResponse:
        self.requests.append(request)
        secretmanager_v1.AccessSecretVersionRequest(**request)  # the real request type
        data = self.versions[-1]
        crc = google_crc32c.value(data) + (1 if self.corrupt else 0)
        return secretmanager_v1.AccessSecretVersionResponse(
            name=f"{SECRET}/versions/{len(self.versions)}",
            payload=secretmanager_v1.SecretPayload(data=data, data_crc32c=crc),
        )


def document(**keys: str) -> bytes:
    return json.dumps({name: access.key_hash(key) for name, key in keys.items()}).encode()


def refreshed(keys: access.Keys, clock: FakeClock, seconds: float) -> None:
    """Move the clock past the refresh interval and let the background re-read finish."""
    clock.now += seconds
    keys.name_of("anything")  # starts the re-read
    for thread in threading.enumerate():
        if thread.name == "api-keys":
            thread.join(10)


def test_settings_choose_secret_manager_and_the_request_is_the_documented_one() -> None:
    fake = FakeSecretManagerClient(document(shop_a="k1"))
    source = access.key_source(Settings(api_keys=SECRET), client=fake)
    assert isinstance(source, access.SecretManagerKeys)
    keys = access.Keys(source, 60)
    assert fake.requests == [{"name": f"{SECRET}/versions/latest"}]
    assert keys.name_of("k1") == "shop_a" and keys.name_of("k2") is None
    assert isinstance(access.key_source(Settings(api_keys="/etc/keys.json")), access.FileKeys)
    assert access.key_source(Settings()) is None
    with pytest.raises(ValueError, match="projects/<project>/secrets/<id>"):
        access.SecretManagerKeys("projects/p/secrets")


def test_rotation_is_picked_up_by_a_running_gate(tmp_path) -> None:
    fake = FakeSecretManagerClient(document(shop_a="old"))
    clock = FakeClock()
    keys = access.Keys(access.SecretManagerKeys(SECRET, fake), 30, clock=clock)
    service = ServingApp(Settings(models_uri=str(tmp_path), model_refresh_seconds=0))
    gate = access.Gate(service, keys=keys)

    def status(key: str) -> int:
        return gate.respond("GET", "/similar", "sku=x", {"x-api-key": key})[0]

    assert status("old") == 503  # past the gate: no model in this folder
    assert status("new") == 403
    fake.add_version(document(shop_a="new"))
    refreshed(keys, clock, 10)  # within the interval: not re-read yet
    assert status("new") == 403 and len(fake.requests) == 1
    refreshed(keys, clock, 25)
    assert len(fake.requests) == 2
    assert status("new") == 503 and status("old") == 403
    body = orjson.loads(gate.respond("GET", "/similar", "sku=x", {"x-api-key": "old"})[2])
    assert body["field"] == "key"


def test_a_corrupt_or_broken_version_keeps_the_last_good_keys() -> None:
    fake = FakeSecretManagerClient(document(shop_a="good"))
    clock = FakeClock()
    keys = access.Keys(access.SecretManagerKeys(SECRET, fake), 30, clock=clock)
    fake.add_version(document(shop_a="other"))
    fake.corrupt = True
    with pytest.raises(ValueError, match="CRC32C"):
        access.SecretManagerKeys(SECRET, fake).read()
    refreshed(keys, clock, 31)
    assert keys.name_of("good") == "shop_a"
    fake.corrupt = False
    fake.add_version(b"not json")
    refreshed(keys, clock, 31)
    assert keys.name_of("good") == "shop_a"
    # A start without a valid version (none added yet): no key is valid until one is.
    fake.add_version(b'{"shop_a": "not-a-digest"}')
    later = access.Keys(access.SecretManagerKeys(SECRET, fake), 30, clock=clock)
    assert later.name_of("good") is None
    fake.add_version(document(shop_a="good"))
    refreshed(later, clock, 31)
    assert later.name_of("good") == "shop_a"
