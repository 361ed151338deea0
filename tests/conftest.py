"""Shared plumbing for the test suite: data locations, fake AWS, Prefect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder that ships beside the repository (``../shared/data``)."""
    path = Path(os.environ.get("LOYALTY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    assert path.is_dir(), f"shared data folder not found at {path}"
    return path
