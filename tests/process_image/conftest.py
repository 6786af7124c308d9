"""process-image tests: one real scoring service (tiny controlled TensorFlow model, frozen graph with
MegaDetector's signature) per test session, plus Services pointed at the session's Azurite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support.scoring_process import run_scoring_service


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tests.support.tiny_models import build_controlled_frozen_graph

    return build_controlled_frozen_graph(tmp_path_factory.mktemp("model") / "md_v5a_controlled.pb")


@pytest.fixture(scope="session")
def scoring_url(tiny_model):
    with run_scoring_service(
        {
            "SCORING_MODEL_PATH": str(tiny_model),
            "SCORING_MODEL_VERSION": "v5a-tiny",
            "SCORING_OUTPUT_THRESHOLD": "0.05",
        }
    ) as url:
        yield url


@pytest.fixture
def svc(azurite, database_url, scoring_url, clean_db, clean_queues, monkeypatch):
    """Services of this process (real PostgreSQL, Azurite and scoring service), on empty tables and queues."""
    from functions.bootstrap import Services, reset_services
    from functions.settings import load_settings

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCORING_URL", str(scoring_url))
    monkeypatch.setenv("SCORING_RETRY_BUDGET_S", "3")
    reset_services()
    services = Services(load_settings())
    yield services
    services.scoring.close()
    services.db.close()
    reset_services()
