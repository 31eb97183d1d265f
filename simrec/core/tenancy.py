"""The rules that turn a tenant (shop) name into storage names, in one place.

* ``check_tenant``: a tenant name is used as a path segment (``models/<tenant>/``) and as a
  Datastore namespace, so it must be safe as both: 1-63 characters of ``A-Z a-z 0-9 _ . -``,
  starting with a letter or digit (so never ``.``/``..``, never a ``__reserved__``
  Datastore namespace, never a separator).
* ``datastore_namespace``: the namespace a tenant's neighbour lists live in, used by the
  Beam load when it writes them and by serving when it reads them.
"""

from __future__ import annotations

import re

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
TENANT_PLACEHOLDER = "{tenant}"


def is_tenant_name(name: str) -> bool:
    return TENANT_PATTERN.fullmatch(name) is not None


def check_tenant(name: str) -> str:
    """``name`` if it is a valid tenant name, else ValueError (one line, names the rule)."""
    if not is_tenant_name(name):
        raise ValueError(
            f"invalid tenant name {name[:64]!r}: 1-63 characters of letters, digits, '_', "
            "'.', '-', starting with a letter or digit"
        )
    return name


def datastore_namespace(configured: str | None, tenant: str) -> str:
    """The Datastore namespace of ``tenant``'s neighbour lists.

    ``configured`` is the ``datastore_namespace`` setting: empty (the default) gives every
    tenant its own namespace named after it; ``{tenant}`` in it is replaced by the tenant
    (``rec-{tenant}``); any other value is one fixed namespace, for a single-tenant
    deployment only (serving refuses it with several tenants). Applying the rule to its
    own result gives the same namespace, so a launcher may pass either form.
    """
    check_tenant(tenant)
    template = configured or TENANT_PLACEHOLDER
    return template.replace(TENANT_PLACEHOLDER, tenant)
