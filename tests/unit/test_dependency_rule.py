"""The dependency rule (``simrec._layers``) on the real imports, and its picture in
docs/architecture.md."""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simrec import _layers

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DOC = REPO / "docs" / "architecture.md"
SOURCES = ("simrec", "functions", "spark", "beam")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for top in SOURCES
        for p in sorted((REPO / top).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


MODULES = _modules()


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file, at any depth (function-level
    and ``TYPE_CHECKING`` imports too); ``from a import b`` names ``a.b`` when that is a
    module of the tree."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return found


def _first_party(name: str) -> bool:
    return name.split(".")[0] in SOURCES


def test_every_module_belongs_to_a_unit_of_the_rule() -> None:
    outside = [m for m in MODULES if not _layers.unit_of(m)]
    outside.remove("simrec")  # the package root: its version only
    outside.remove("simrec._layers")  # the rule itself
    assert len(MODULES) > 60
    assert not outside, f"modules no unit of simrec._layers names: {outside}"


def test_every_unit_of_the_rule_exists_and_is_in_one_layer() -> None:
    in_layers = [u for _, units in _layers.LAYERS for u in units]
    assert sorted(in_layers) == sorted(_layers.ALLOWED)
    missing = [u for u in in_layers if not any(m == u or m.startswith(u + ".") for m in MODULES)]
    assert not missing, f"the rule names units with no module: {missing}"


def test_imports_follow_the_rule() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for module, path in MODULES.items()
        for line, name in imports_of(module, path)
        if _first_party(name) and not _layers.allowed(module, name)
    ]
    assert not bad, "imports outside simrec._layers.ALLOWED:\n" + "\n".join(bad)


def test_no_unit_imports_its_forbidden_libraries() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for module, path in MODULES.items()
        for line, name in imports_of(module, path)
        if name.split(".")[0] in _layers.FORBIDDEN.get(_layers.unit_of(module), ())
    ]
    assert not bad, "\n".join(bad)


def test_the_rule_catches_an_import_outside_it() -> None:
    assert _layers.allowed("simrec.serving.api", "simrec.core.recommender")
    assert not _layers.allowed("simrec.core.scoring", "simrec.serving.api")
    assert not _layers.allowed("simrec.jobs.beam_load", "simrec.stages.load")
    assert not _layers.allowed("functions.export.main", "functions.cluster.main")
    assert not _layers.allowed("spark.dimsum_job", "beam.load_pipeline")
    tree = ast.parse("def f():\n    from simrec.stages import load\n")
    assert [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] == ["simrec.stages"]


def _loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {imports!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)  # fmt: skip
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("unit", ["simrec.core", "simrec.serving"])
def test_importing_a_unit_loads_no_forbidden_library(unit: str) -> None:
    """What the imports pull in transitively, at run time (the AST check sees one file)."""
    modules = [m for m in MODULES if _layers.unit_of(m) == unit]
    # Namespace-package .pth files create empty ``google``/``google.cloud`` at start-up.
    loaded = _loaded_after(modules) - _loaded_after([])
    banned = _layers.FORBIDDEN[unit]
    bad = sorted(m for m in loaded if m.split(".")[0] in banned)
    assert len(modules) >= 8
    assert not bad, f"{unit} pulls in {bad}"


def test_the_architecture_doc_shows_the_rule() -> None:
    """The doc's table is the rule's (``python -m simrec._layers``), and its picture
    names every unit."""
    text = DOC.read_text()
    block = re.search(r"<!-- rule: python -m simrec._layers -->\n(.*?)\n<!-- /rule -->", text, re.S)
    assert block, "docs/architecture.md lost its rule table markers"
    assert block.group(1).strip() == _layers.table(), "run: python -m simrec._layers"
    picture = re.search(r"## Dependency rule\n```\n(.*?)```", text, re.S)
    assert picture, "docs/architecture.md lost its layer picture"
    shown = {
        _layers.unit_of(path.removesuffix(".py").replace("/", "."))
        for token in re.findall(r"[a-z_]+(?:[./][a-z_{},]+)+", picture.group(1))
        for path in _expand(token)
    }
    assert "" not in shown, "the picture names a path outside the rule"
    assert shown == set(_layers.ALLOWED), f"the picture lacks {set(_layers.ALLOWED) - shown}"


def _expand(token: str) -> list[str]:
    """``functions/{export,cluster}/main.py`` -> one path per choice."""
    parts = re.split(r"\{([^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]
