"""Print the README's configuration table from the settings object (one source of truth)."""

from __future__ import annotations

from simrec.config import Settings


def table() -> str:
    prefix = Settings.model_config["env_prefix"]
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = f"`{default}`" if default not in ("", None) else "(empty)"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
