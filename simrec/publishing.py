"""The one publishing policy: writing a model version and moving ``models/<tenant>/LATEST``.

Every engine and launcher publishes through here (the local stage, the Beam load on the
local runner and on Dataflow workers, the load stage's redelivery path), so:

* a version is written file by file with ``metadata.json`` last, and is immutable: the
  same content again rewrites nothing, different content under the same name raises;
* LATEST only ever names a complete version (its metadata exists and says so), and is
  written as one whole object (a local temp file renamed over it; one GCS object write);
* LATEST only moves forward in run date (ties: the later ``created_at`` wins, so a
  forced rerun of the served night replaces it); an older night's version is kept aside
  unless the operator asks to publish it (``publish=True``: ``--publish`` /
  ``"publish": true`` in the nightly message);
* a LATEST that names a missing or incomplete version, or holds a bad name, is repaired
  by the next complete version whatever its date.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from simrec import storage
from simrec.core import layout, model_builder
from simrec.core.snapshot import METADATA_NAME, ModelSnapshot
from simrec.storage import snapshots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """What publishing did: the version folder and whether LATEST now names it."""

    folder: str
    version: str
    latest: str | None
    moved: bool
    reason: str

    @property
    def is_latest(self) -> bool:
        return self.latest == self.version


def version_metadata(models_root: str, tenant: str, version: str) -> dict[str, Any] | None:
    """The metadata of a complete version, or None when it is missing or incomplete."""
    uri = layout.join(layout.model_version(models_root, tenant, version), METADATA_NAME)
    try:
        metadata = json.loads(storage.read_bytes(uri))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(metadata, dict) or metadata.get("version", version) != version:
        return None
    return metadata


def is_complete(models_root: str, tenant: str, version: str) -> bool:
    return version_metadata(models_root, tenant, version) is not None


def _order(metadata: dict[str, Any]) -> tuple[dt.date, str] | None:
    """Where a version stands in time: (run date, created_at); None when unknown."""
    date = (metadata.get("params") or {}).get("date")
    try:
        day = dt.date.fromisoformat(str(date))
    except ValueError:
        return None
    return day, str(metadata.get("created_at") or "")


def decide(
    current: dict[str, Any] | None, candidate: dict[str, Any], publish: bool = False
) -> tuple[bool, str]:
    """Whether LATEST should move from ``current`` (its metadata; None: no complete model
    is served) to the complete ``candidate``, and why. The rule of the module docstring."""
    if current is None:
        return True, "no complete model was published"
    if current.get("version") == candidate.get("version"):
        return False, "already the published version"
    if publish:
        return True, "publish requested"
    new, old = _order(candidate), _order(current)
    if new is None or old is None:
        return False, "run date unknown: not moving LATEST without publish"
    if new >= old:
        return True, f"newer than the published version {current.get('version')!r}"
    return False, (
        f"older night than the published version {current.get('version')!r} "
        f"({new[0]} < {old[0]}): kept aside; publish it explicitly to serve it"
    )


def current_latest(
    models_root: str, tenant: str
) -> tuple[str | None, dict[str, Any] | None]:
    """``(LATEST's version, its metadata)``; a bad name or an incomplete version gives
    ``(name, None)`` so the next complete version repairs it."""
    version, metadata, _ = _read_latest(models_root, tenant)
    return version, metadata


def _read_latest(
    models_root: str, tenant: str
) -> tuple[str | None, dict[str, Any] | None, storage.Token]:
    data, token = storage.read_versioned(layout.latest_pointer(models_root, tenant))
    text = (data or b"").decode(errors="replace").strip()
    if not text:
        return None, None, token
    if not layout.is_name(text):
        log.warning("ignoring LATEST of tenant %r: not a valid name: %r", tenant, text[:64])
        return None, None, token
    return text, version_metadata(models_root, tenant, text), token


#: Conditional writes of LATEST that may lose to another publisher before giving up.
MAX_SWAPS = 8


def settle_latest(
    models_root: str, tenant: str, version: str, *, publish: bool = False
) -> Published:
    """Point LATEST at the complete ``version`` when the policy says so.

    Read, decide and write form one compare-and-swap (a GCS generation precondition, a
    file lock locally): a concurrent publisher that moved LATEST in between makes this
    one decide again against what it wrote, so LATEST never goes backwards.
    """
    folder = layout.model_version(models_root, tenant, version)
    candidate = version_metadata(models_root, tenant, version)
    if candidate is None:
        raise FileNotFoundError(f"model version {version!r} is incomplete or missing: {folder}")
    pointer = layout.latest_pointer(models_root, tenant)
    for _ in range(MAX_SWAPS):
        latest, current, token = _read_latest(models_root, tenant)
        move, reason = decide(current, {"version": version, **candidate}, publish)
        if not move:
            break
        if storage.write_if_unchanged(pointer, version.encode(), token):
            latest = version
            break
    else:
        raise RuntimeError(f"LATEST of tenant {tenant!r} kept changing; not moved to {version}")
    log.info("model %s of tenant %s: %s", version, tenant, reason)
    return Published(folder, version, latest, move, reason)


def write_version(models_root: str, tenant: str, snapshot: ModelSnapshot) -> str:
    """Write a complete, immutable version (metadata last); LATEST is not touched.

    Already complete with the same arrays and vocabulary: nothing is rewritten (a retried
    bundle, a redelivery). Complete with other content: ``ValueError``, as a version
    never changes under a reader. Complete-looking but unreadable: rewritten.
    """
    version = layout.check_name(snapshot.version, "model version")
    folder = layout.model_version(models_root, tenant, version)
    existing = None
    if is_complete(models_root, tenant, version):
        try:
            existing = snapshots.read_snapshot(models_root, tenant, version)
        except Exception as exc:  # corrupt: nobody can be serving it, so it is rewritten
            log.warning("rewriting unreadable model version %s: %s", folder, exc)
    if existing is not None:
        if not model_builder.same_content(existing, snapshot):
            raise ValueError(
                f"model version {version!r} already exists at {folder} with different "
                "content; versions are immutable: pass a new model version"
            )
        return folder
    storage.remove(layout.join(folder, METADATA_NAME))  # never "complete" mid-rewrite
    for name, content in snapshot.to_files().items():
        storage.write_bytes(layout.join(folder, name), content)
    return folder


def publish_version(
    models_root: str, tenant: str, snapshot: ModelSnapshot, *, publish: bool = False
) -> Published:
    """Write the version, then move LATEST to it if the policy allows."""
    write_version(models_root, tenant, snapshot)
    return settle_latest(models_root, tenant, snapshot.version, publish=publish)


def write_snapshot(models_root: str, tenant: str, snapshot: ModelSnapshot) -> str:
    """Write a complete version and publish it explicitly (tests, tools, benchmarks);
    its folder."""
    return publish_version(models_root, tenant, snapshot, publish=True).folder
