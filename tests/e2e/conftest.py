"""Whole-pipeline fixtures: real Azurite + PostgreSQL (session), the real scoring service (null backend: one
person at 0.95 in every photo), the real local Functions host running function_app.py, and the three
channel stand-ins. ``pipeline_factory(host_json=..., **env)`` starts one pipeline for the test (clean tables
and queues, a park with cameras CAM01..CAM10 and its three channels); ``pipeline`` is the default one.
See tests/e2e/harness.py."""

from __future__ import annotations

import pytest

from functions.notify import cmore as cmore_module
from tests.fakes import FakeCmore, FakeEarthRanger, FakeSendGrid
from tests.support.scoring_process import run_scoring_service

from .harness import CMORE_PASSWORD, CMORE_USER, ER_TOKEN, FAST_QUEUES, SECRET_ENV, SG_KEY, Pipeline

CAMERAS = [f"CAM{i:02d}" for i in range(1, 11)]
SCORING_ENV = {"SCORING_BACKEND": "null", "SCORING_NULL_RESULT": "person"}


@pytest.fixture(scope="session")
def scoring_service():
    """The scoring service (a real process); drills kill and restart it on the same port."""
    with run_scoring_service(SCORING_ENV) as service:
        yield service


@pytest.fixture
def fakes():
    cmore_module.clear_caches()
    with (
        FakeEarthRanger(token=ER_TOKEN) as er,
        FakeCmore(users={CMORE_USER: CMORE_PASSWORD}) as cm,
        FakeSendGrid(api_key=SG_KEY) as sg,
    ):
        yield er, cm, sg


@pytest.fixture
def pipeline_factory(clean_db, clean_queues, storage, fakes, host_factory, scoring_service):
    made: list[Pipeline] = []

    def make(host_json: dict | None = None, **env: str) -> Pipeline:
        if scoring_service.returncode is not None or scoring_service.proc is None:
            scoring_service.start()  # an earlier drill left it dead
        er, cm, sg = fakes
        park_id, cameras, channels = Pipeline.register(clean_db, er, cm, sg, CAMERAS)
        settings = {
            "SCORING_URL": str(scoring_service),
            "SCORING_RETRY_BUDGET_S": "2",
            "SCORING_BACKOFF_BASE_S": "0.1",
            # retries (functions/middleware/retry.py) with shorter steps than production's 5,15,60,300,...:
            # the drills' outages last as long as real ones, the waits between tries are what is shortened
            "RETRY_SCHEDULE_S": "2,5,10,20",
            **SECRET_ENV,
            **env,
        }
        host = host_factory(host_json={**FAST_QUEUES, **(host_json or {})}, **settings)
        pipe = Pipeline(
            db=clean_db,
            storage=storage,
            host=host,
            scoring=scoring_service,
            er=er,
            cm=cm,
            sg=sg,
            park_id=park_id,
            cameras=cameras,
            channels=channels,
        )
        made.append(pipe)
        return pipe

    yield make
    for p in made:
        p.close()


@pytest.fixture
def pipeline(pipeline_factory) -> Pipeline:
    return pipeline_factory()
