"""README.md and docs/*.md name only paths that exist: repository files, and the files
``make build`` writes (checked against a real build)."""

from __future__ import annotations

import importlib.util
import itertools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: A path is a token whose first part is one of these (runtime paths such as
#: ``models/<tenant>/LATEST`` or ``DIR/summary.json`` are not repository paths).
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {"build"}
#: Files the docs tell the operator to create (they are not in the repository).
OPERATOR_FILES = {
    "terraform/terraform.tfvars",  # copied from terraform/examples/minimal.tfvars
    "terraform/backend.tf",  # an optional backend "gcs" block of the team's own
}
CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _expand(token: str) -> list[str]:
    """``a/{b,c}.zip`` -> ``a/b.zip``, ``a/c.zip``."""
    parts = re.split(r"\{([^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def named_paths(doc: Path) -> set[str]:
    """Repository-relative paths ``doc`` names in code spans and in relative links."""
    text = doc.read_text()
    found: set[str] = set()
    for span in CODE.findall(text):
        for word in span.split():
            word = word.strip("'\",;:()").split("=", 1)[-1]
            if "<" in word or "://" in word or word.startswith("-"):
                continue
            if word.split("/", 1)[0] in TOP and ("/" in word or "." in word):
                found.update(_expand(word))
    for target in LINK.findall(text):
        if "://" in target:
            continue
        resolved = (doc.parent / target).resolve()
        found.add(resolved.relative_to(REPO).as_posix())
    return found


@pytest.fixture(scope="module")
def build_output(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("build_tool", REPO / "tools" / "build.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path_factory.mktemp("build")
    tool.build(out, skip_wheel=True)
    (out / "recommend" / "wheels").mkdir(exist_ok=True)  # the wheel's folder
    return out


def _exists(path: str, build: Path) -> bool:
    base = build if path.split("/", 1)[0] == "build" else REPO
    rel = path.split("/", 1)[1] if base is build else path
    rel = rel.rstrip("/")
    return bool(list(base.glob(rel))) if "*" in rel else (base / rel).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_path_a_doc_names_exists(doc: Path, build_output: Path) -> None:
    paths = named_paths(doc)
    missing = sorted(p for p in paths - OPERATOR_FILES if not _exists(p, build_output))
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"


def test_the_path_finder_sees_paths_and_their_mistakes(tmp_path: Path, build_output) -> None:
    doc = REPO / "docs" / "_probe.md"
    text = ("Build `functions/recommend/Dockerfile` and `build/functions/{export,cluster}.zip`; "
            "see [the modules](../terraform/README.md) and `models/<tenant>/LATEST`.")  # fmt: skip
    try:
        doc.write_text(text)
        paths = named_paths(doc)
    finally:
        doc.unlink()
    assert paths == {"functions/recommend/Dockerfile", "build/functions/export.zip",
                     "build/functions/cluster.zip", "terraform/README.md"}  # fmt: skip
    assert not _exists("functions/recommend/Dockerfile", build_output)  # the old docs' path
    assert _exists("build/functions/export.zip", build_output)
    assert sum(len(named_paths(d)) for d in DOCS) >= 30
