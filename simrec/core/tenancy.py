"""The rules that turn a tenant (shop) name into storage names, in one place.

* ``check_tenant``: a tenant name is used as a path segment (``models/<tenant>/``) and as a
  Datastore namespace, so it must be safe as both: a name by the one rule for path
  segments (``layout.check_name``: never ``..``, never a separator, never a leading ``_``,
  so never a ``__reserved__`` namespace) of at most 63 characters.
* ``datastore_namespace``: the namespace a tenant's neighbor lists live in, used by the
  Beam load when it writes them and by serving when it reads them.
"""

from __future__ import annotations

from simrec.core import layout

#: A tenant is a name (``layout.NAME_PATTERN``: a safe path segment) of at most this many
#: characters, so ``{tenant}`` namespace templates and job names derived from it fit.
MAX_TENANT_LENGTH = 63
TENANT_PLACEHOLDER = "{tenant}"


def is_tenant_name(name: object) -> bool:
    return layout.is_name(name) and len(name) <= MAX_TENANT_LENGTH  # type: ignore[arg-type]


def check_tenant(name: str) -> str:
    """``name`` if it is a valid tenant name, else ``layout.BadName`` (one line)."""
    if isinstance(name, str) and len(name) > MAX_TENANT_LENGTH:
        raise layout.BadName(
            f"tenant {name[:64]!r}... is longer than {MAX_TENANT_LENGTH} characters"
        )
    return layout.check_name(name, "tenant")


def datastore_namespace(configured: str | None, tenant: str) -> str:
    """The Datastore namespace of ``tenant``'s neighbor lists.

    ``configured`` is the ``datastore_namespace`` setting: empty (the default) gives every
    tenant its own namespace named after it; ``{tenant}`` in it is replaced by the tenant
    (``rec-{tenant}``); any other value is one fixed namespace, for a single-tenant
    deployment only (serving refuses it with several tenants). Applying the rule to its
    own result gives the same namespace, so a launcher may pass either form.
    """
    check_tenant(tenant)
    template = configured or TENANT_PLACEHOLDER
    return template.replace(TENANT_PLACEHOLDER, tenant)
