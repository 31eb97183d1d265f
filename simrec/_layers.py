"""The dependency rule: which part of the code may import which (the one definition).

``tests/unit/test_dependency_rule.py`` checks every import of every module against it, and
``docs/architecture.md`` shows its table as printed by ``python -m simrec._layers``
(the test compares the two). A module belongs to the longest unit naming a prefix of
its dotted name (``simrec.stages.cloudevents`` before ``simrec.stages``); a unit may
always import itself.
"""

from __future__ import annotations

#: (layer, units) from the bottom up; every unit names what it may import, below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pure core", ("simrec.core",)),
    ("shared rules", ("simrec.config", "simrec.sql", "simrec.logs", "simrec.extras",
                      "simrec.deploy_contract", "simrec.stages.cloudevents", "simrec.generate")),
    ("objects", ("simrec.storage", "simrec.publishing")),
    ("evaluation protocol", ("simrec.evaluation",)),
    ("jobs, ports", ("simrec.jobs", "simrec.adapters")),
    ("stages, serving, evaluation commands", ("simrec.stages", "simrec.serving",
                                              "simrec.evaluation.events",
                                              "simrec.evaluation.commands")),
    ("embedded default", ("simrec.local",)),
    ("command line", ("simrec.cli",)),
    ("entry points", ("functions.export", "functions.cluster", "functions.dataflow_launch",
                      "functions.recommend", "spark", "beam")),
)  # fmt: skip

_SHARED = ("simrec.core", "simrec.config", "simrec.logs", "simrec.extras")

#: unit -> the units it may import (besides itself and the package root ``simrec``).
ALLOWED: dict[str, tuple[str, ...]] = {
    "simrec.core": (),
    "simrec.config": ("simrec.core", "simrec.sql"),
    "simrec.sql": ("simrec.core",),
    "simrec.logs": (),
    "simrec.extras": (),
    "simrec.deploy_contract": ("simrec.config",),
    "simrec.stages.cloudevents": (),
    "simrec.generate": ("simrec.core",),
    "simrec.storage": ("simrec.core", "simrec.extras"),
    "simrec.publishing": ("simrec.core", "simrec.storage"),
    "simrec.evaluation": ("simrec.core",),
    "simrec.jobs": ("simrec.core", "simrec.logs", "simrec.storage", "simrec.publishing",
                    "simrec.evaluation"),
    "simrec.adapters": (*_SHARED, "simrec.sql", "simrec.deploy_contract",
                        "simrec.stages.cloudevents", "simrec.storage", "simrec.jobs"),
    "simrec.stages": (*_SHARED, "simrec.sql", "simrec.deploy_contract",
                      "simrec.stages.cloudevents", "simrec.storage", "simrec.publishing",
                      "simrec.adapters"),
    "simrec.serving": (*_SHARED, "simrec.storage"),
    "simrec.evaluation.events": ("simrec.core", "simrec.sql", "simrec.adapters",
                                 "simrec.evaluation"),
    "simrec.evaluation.commands": (*_SHARED, "simrec.evaluation", "simrec.evaluation.events"),
    "simrec.local": (*_SHARED, "simrec.generate", "simrec.stages.cloudevents",
                     "simrec.storage", "simrec.publishing", "simrec.evaluation", "simrec.jobs",
                     "simrec.adapters", "simrec.stages"),
    "simrec.cli": (*_SHARED, "simrec.generate", "simrec.stages.cloudevents",
                   "simrec.storage", "simrec.publishing", "simrec.adapters", "simrec.stages",
                   "simrec.serving", "simrec.evaluation", "simrec.evaluation.commands",
                   "simrec.local"),
    "functions.export": ("simrec.logs", "simrec.stages.cloudevents", "simrec.stages"),
    "functions.cluster": ("simrec.logs", "simrec.stages.cloudevents", "simrec.stages"),
    "functions.dataflow_launch": ("simrec.logs", "simrec.stages.cloudevents", "simrec.stages"),
    "functions.recommend": ("simrec.logs", "simrec.serving"),
    "spark": ("simrec.jobs",),
    "beam": ("simrec.jobs",),
}  # fmt: skip

#: unit -> third-party top-level names it must not import (the core stays pure Python,
#: NumPy, SciPy, Arrow; a serving install has no Spark or Beam).
_ENGINES = ("pyspark", "apache_beam")
_CLOUD_AND_WEB = ("google", "grpc", "gcsfs", "fsspec", "duckdb", "flask", "werkzeug",
                  "functions_framework", "cloudevents", "uvicorn", "gunicorn")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "simrec.core": (*_ENGINES, *_CLOUD_AND_WEB),
    # The protocol runs inside the Spark job (the nightly tuning step): no warehouse.
    "simrec.evaluation": (*_ENGINES, *_CLOUD_AND_WEB),
    "simrec.serving": _ENGINES,
    "functions.recommend": _ENGINES,
}  # fmt: skip


def unit_of(module: str) -> str:
    """The unit ``module`` belongs to; ``""`` outside the rule (the root, this file)."""
    best = ""
    for unit in ALLOWED:
        if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
            best = unit
    return best


def allowed(importer: str, imported: str) -> bool:
    """May module ``importer`` import the simrec module ``imported``?"""
    mine, theirs = unit_of(importer), unit_of(imported)
    return theirs in ("", mine) or theirs in ALLOWED.get(mine, ())


def table() -> str:
    """The rule as the markdown table ``docs/architecture.md`` shows."""
    rows = ["| layer | unit | may import |", "|---|---|---|"]
    for layer, units in reversed(LAYERS):
        for i, unit in enumerate(units):
            deps = ", ".join(f"`{d}`" for d in ALLOWED[unit]) or "nothing of simrec"
            banned = FORBIDDEN.get(unit)
            if banned:
                deps += "; never " + ", ".join(f"`{b}`" for b in banned)
            rows.append(f"| {layer if i == 0 else ''} | `{unit}` | {deps} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
