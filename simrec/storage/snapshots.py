"""Serving model snapshots in storage: ``models/<tenant>/<version>/`` and ``LATEST``.

Reading is here; writing a version and moving LATEST is the publishing policy
(:mod:`simrec.publishing`), which every pipeline calls.
"""

from __future__ import annotations

from simrec import storage
from simrec.core import layout
from simrec.core.snapshot import (
    ARRAYS_NAME,
    CATALOG_NAME,
    METADATA_NAME,
    SKUS_NAME,
    ModelSnapshot,
)


def latest_version(models_root: str, tenant: str) -> str | None:
    """The version LATEST names, or None before the first model.

    Its content is a path segment: anything but a valid name (``..``, a slash) raises
    ``layout.BadName`` instead of being followed.
    """
    uri = layout.latest_pointer(models_root, tenant)
    try:
        text = storage.read_bytes(uri).decode(errors="replace").strip()
    except FileNotFoundError:
        return None
    return layout.check_name(text, f"LATEST of tenant {tenant!r}") if text else None


def read_snapshot(models_root: str, tenant: str, version: str) -> ModelSnapshot:
    folder = layout.model_version(models_root, tenant, version)
    if not storage.exists(layout.join(folder, METADATA_NAME)):
        raise FileNotFoundError(f"model version {version!r} is incomplete or missing: {folder}")
    files = {
        n: storage.read_bytes(layout.join(folder, n))
        for n in (ARRAYS_NAME, SKUS_NAME, METADATA_NAME)
    }
    catalog = layout.join(folder, CATALOG_NAME)
    if storage.exists(catalog):  # optional part of a version
        files[CATALOG_NAME] = storage.read_bytes(catalog)
    return ModelSnapshot.from_files(files)
