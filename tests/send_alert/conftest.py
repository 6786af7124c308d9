"""Fixtures of the send-alert tests: the three fakes, secrets in the environment, a park with a camera."""

from __future__ import annotations

import pytest

from functions.notify import cmore as cmore_module
from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid

from . import helpers as h


@pytest.fixture
def fakes():
    cmore_module.clear_caches()
    with (
        FakeEarthRanger(token=h.ER_TOKEN) as er,
        FakeCmore(users={h.CMORE_USER: h.CMORE_PASSWORD}) as cm,
        FakeSendGrid(api_key=h.SG_KEY) as sg,
    ):
        yield er, cm, sg
    cmore_module.clear_caches()


@pytest.fixture
def env(app_settings, clean_db, clean_queues, monkeypatch):
    """Settings for in-process handler calls, the channel secrets as environment variables, empty state."""
    for k, v in h.SECRET_ENV.items():
        monkeypatch.setenv(k, v)
    from functions.bootstrap import services

    return services()


@pytest.fixture
def park(env):
    db = env.db
    park_id = h.add_park(db)
    camera_id = h.add_camera(db, park_id)
    return {"park_id": park_id, "camera_id": camera_id, "db": db, "storage": env.storage}
