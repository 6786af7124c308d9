"""Session fixtures of the scoring tests: the tiny controlled models are built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiny_models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scoring-models")


@pytest.fixture(scope="session")
def frozen_graph(model_dir) -> Path:
    """Controlled detector as a TF1 frozen graph named like MegaDetector v4.1."""
    return tiny_models.build_controlled_frozen_graph(model_dir / "md_v4.1.0.pb")


@pytest.fixture(scope="session")
def saved_model(model_dir) -> Path:
    return tiny_models.build_controlled_saved_model(model_dir / "controlled_saved_model")


@pytest.fixture(scope="session")
def saved_model_batch1(model_dir) -> Path:
    """Controlled SavedModel whose input has a fixed batch dimension of 1 (as many OD API exports)."""
    return tiny_models.build_controlled_saved_model(model_dir / "controlled_saved_model_b1", batch_size=1)
