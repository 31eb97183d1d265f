"""The optional dependency groups (``pyproject.toml``'s extras) as the code meets them.

The core install serves recommendations; the pipeline's engines and the Google Cloud
clients are extras. A core module imports an extra's package through :func:`require`,
at the point of use, so a missing group ends in one line naming what to install
(tests/unit/test_requirements.py checks each call names the extra that lists it).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """A package of an optional group is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """``import module``, or :class:`MissingExtra` naming ``simrec[extra]``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and module != missing and not module.startswith(f"{missing}."):
            raise  # the package is there but broken: not a missing group
        raise MissingExtra(
            f"{module} is not installed: it is in simrec's {extra!r} extra "
            f"(pip install 'simrec[{extra}]')",
            name=module,
        ) from exc
