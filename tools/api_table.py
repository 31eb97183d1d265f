"""Print the README's HTTP API table from the OpenAPI document (one source of truth)."""

from __future__ import annotations

from simrec.config import Settings
from simrec.serving.openapi import openapi_document, readme_table


def table() -> str:
    s = Settings()
    return readme_table(openapi_document(s.max_n, s.max_skus_per_request, [s.tenant]))


if __name__ == "__main__":
    print(table())
