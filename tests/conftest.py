"""What every test shares: a clean, isolated process environment and the shared datasets.

Fixtures of one area live in that folder's ``conftest.py`` (unit / engines / cloud / http);
the stage outputs tests start from are written by ``tests/builders.py`` with the production
builders. Nothing changes the environment at import: :func:`pytest_configure` does it
through a ``MonkeyPatch`` for the run and undoes it afterwards.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from simrec import logs
from simrec.config import settings_env_names
from tests.paths import SHARED_DATA

_ENV = pytest.StashKey[pytest.MonkeyPatch]()


def pytest_configure(config: pytest.Config) -> None:
    """Isolate the process for the whole run, collection included (test modules build
    ``Settings()`` at import): tool state out of the user's home, no deployment setting
    inherited, Spark's Python workers on this interpreter. Undone at the end of the run."""
    mp = config.stash[_ENV] = pytest.MonkeyPatch()
    mp.setenv("CLOUDSDK_CONFIG", tempfile.mkdtemp(prefix="simrec-test-gcloud-"))
    mp.setenv("PYSPARK_PYTHON", sys.executable)
    mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    # gcsfs >= 2026 probes each bucket's storage layout over gRPC with TLS ("zonal/HNS"
    # support); against a plaintext emulator that retries for minutes. gcsfs reads this
    # when first imported (fsspec imports it on the first gs:// URI).
    mp.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    for name in settings_env_names():
        mp.delenv(name, raising=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    mp = config.stash.get(_ENV, None)
    if mp is not None:
        shutil.rmtree(os.environ["CLOUDSDK_CONFIG"], ignore_errors=True)
        mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public datasets in ../shared/data; tests that need them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """The JSON lines :mod:`simrec.logs` writes while the test runs (stderr again after)."""
    buffer = io.StringIO()
    logs.configure(stream=buffer)
    yield buffer
    logs.configure(stream=sys.stderr)
