"""Shared test configuration. Fixtures live in ``tests/plugins/*``, one module per area."""

from __future__ import annotations

import os
import sys
import tempfile

# Keep tool state out of the user's home and make every run start clean.
_STATE = tempfile.mkdtemp(prefix="simrec-test-state-")
os.environ.setdefault("CLOUDSDK_CONFIG", os.path.join(_STATE, "gcloud"))
os.environ.setdefault("HOME_BEAM", os.path.join(_STATE, "beam"))
os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
for _var in ("SIMREC_BACKEND", "SIMREC_DATA_URI", "SIMREC_MODELS_URI", "SIMREC_TENANT"):
    os.environ.pop(_var, None)

pytest_plugins = [
    "tests.plugins.paths",
    "tests.plugins.spark",
    "tests.plugins.emulators",
    "tests.plugins.data",
    "tests.plugins.gcp_wire",
]
