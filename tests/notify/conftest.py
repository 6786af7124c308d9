"""Shared fixtures of the notify tests: photos, notices, the fakes, secrets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.fakes` and `functions` import from the repository root
    sys.path.insert(0, str(ROOT))

from functions.notify import AlertNotice, EnvSecrets  # noqa: E402
from functions.notify import cmore as cmore_module  # noqa: E402
from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid, FakeWebhookReceiver  # noqa: E402
from tests.notify.helpers import make_jpeg, make_notice  # noqa: E402


@pytest.fixture(scope="session")
def photo() -> bytes:
    return make_jpeg()


@pytest.fixture
def notice(photo: bytes) -> AlertNotice:
    return make_notice(photo)


@pytest.fixture
def secrets() -> EnvSecrets:
    return EnvSecrets(
        environ={
            "CHANNEL_SECRET_ER_TOKEN_KRUGER": "er-test-token",
            "CHANNEL_SECRET_CMORE_USER_KRUGER": "ranger",
            "CHANNEL_SECRET_CMORE_PASSWORD_KRUGER": "cmore-pw",
            "CHANNEL_SECRET_SENDGRID_API_KEY": "SG.test-key",
            "CHANNEL_SECRET_WEBHOOK_SECRET_KRUGER": "whsec-kruger-0123456789",
        }
    )


@pytest.fixture
def fake_er():
    with FakeEarthRanger(token="er-test-token", event_types={"trapalert_detection", "poacher_rep"}) as er:
        yield er


@pytest.fixture
def fake_cmore():
    cmore_module.clear_caches()
    with FakeCmore(users={"ranger": "cmore-pw"}) as cm:
        yield cm
    cmore_module.clear_caches()


@pytest.fixture
def fake_sendgrid():
    with FakeSendGrid(api_key="SG.test-key") as sg:
        yield sg


@pytest.fixture
def fake_hook():
    with FakeWebhookReceiver() as hook:
        yield hook
