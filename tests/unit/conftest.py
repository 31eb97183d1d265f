"""Pure-Python tests (no engine, no server, no emulator): the generated shops they read."""

from __future__ import annotations

from tests.builders import (  # noqa: F401 (fixtures)
    dense_shop_events,
    exported_shop,
    shop_events,
)
