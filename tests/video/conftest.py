"""Video tests: the real scoring app in this process (FastAPI TestClient, lifespan and batcher included) with
the controlled detector read by OpenCV (tests/video/controlled.py), plus this process's Services on the
session's Azurite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from functions.adapters.parks import CameraIn, ParkIn, ParkRepository
from tests.video.controlled import ControlledBackend

PARK = "park-v@alerts.example.org"
SENDER = "cam-v1@traps.example.org"


@pytest.fixture(scope="session")
def scoring_app():
    from scoring.app import create_app
    from scoring.settings import load_settings

    settings = load_settings(
        backend="null", video_max_duration_s=60, video_max_frames=12, video_every_s=1.0, max_wait_ms=0
    )
    app = create_app(settings, ControlledBackend(settings))
    with TestClient(app, base_url="http://scoring.test") as client:
        yield client


@pytest.fixture
def svc(app_settings, scoring_app, clean_db, clean_queues):
    from functions.adapters.scoring_client import ScoringClient
    from functions.bootstrap import services

    services = services()
    client = ScoringClient("http://scoring.test", retry_budget_s=1)
    client._client = scoring_app  # the in-process app (ScoringClient.client returns it)
    services.__dict__["scoring"] = client
    return services


@pytest.fixture
def camera(svc):
    repo = ParkRepository(svc.db)
    repo.add_park(ParkIn(slug="park-v", name="Park V", timezone="UTC", inbound_address=PARK))
    return repo.add_camera("park-v", CameraIn(name="CAM-V1", sender_addresses=[SENDER]))
