"""The Google provider's real schema, and a checker of terraform/ against it.

No Terraform provider can be downloaded here, but the prebuilt CDK for Terraform bindings
(PyPI ``cdktf-cdktf-provider-google`` / ``-beta``, generated from one provider release) embed
a jsii assembly describing every resource and data source of that release: for each one a
config struct whose properties are its arguments (``optional`` or required) and nested
blocks (properties typed as another struct, or a list of them). The Terraform name of each
property is the anchor of its registry link (``.../resources/<type>#<name>``).

``provider_schema()`` reads that assembly once and caches the reduced schema under
``.cache/provider-schema/`` (git-ignored). ``check_tree()`` parses every module with
python-hcl2 and reports, for every ``google_*`` resource and data block: unknown types,
unknown arguments or blocks at their place, missing required ones, blocks written as
arguments and arguments written as blocks; and module calls that pass undeclared variables
or miss required ones.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "provider-schema"
DISTRIBUTIONS = {"google": "cdktf-cdktf-provider-google", "google-beta":
                 "cdktf-cdktf-provider-google-beta"}  # fmt: skip
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)
#: Meta-arguments every resource/data block may carry (Terraform language, not the provider).
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "provisioner", "connection"}
MODULE_META = {"source", "version", "count", "for_each", "depends_on", "providers"}
ANCHOR = re.compile(r"registry\.terraform\.io/providers/hashicorp/[\w-]+/([\d.]+)/docs/"
                    r"(?:resources|data-sources)/\w+#(\w+)")  # fmt: skip
TITLE = re.compile(r"^# `(data_)?(google_\w+)`", re.M)


INSTALL = "pip install -c constraints.txt -e '.[test]'"


class SchemaUnavailable(RuntimeError):
    """The bindings package is not installed."""


# --- reading the jsii assembly ------------------------------------------------------------------
def _assembly(distribution: str) -> dict:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise SchemaUnavailable(f"{distribution} is not installed: {INSTALL}") from exc
    [tgz] = [f for f in dist.files or [] if str(f).endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(Path(dist.locate_file(tgz)).read_bytes())) as tar:
        raw = tar.extractfile("package/.jsii").read()
        assembly = json.loads(raw)
        # A large assembly may be stored compressed beside a redirect (jsii file-redirect).
        if assembly.get("schema") == "jsii/file-redirect":
            data = tar.extractfile(f"package/{assembly['filename']}").read()
            if assembly.get("compression") == "gzip":
                data = gzip.decompress(data)
            assembly = json.loads(data)
    return assembly


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _struct_props(types: dict, fqn: str) -> list[dict]:
    """Properties of a struct, with those of the package's own parent interfaces."""
    struct = types[fqn]
    props = list(struct.get("properties", []))
    for parent in struct.get("interfaces", []):
        if parent in types:  # cdktf.TerraformMetaArguments etc. live in another assembly
            props += _struct_props(types, parent)
    return props


def _block_fqn(types: dict, type_: dict) -> tuple[str, bool] | None:
    """(struct fqn, is a list) when a property is a nested block, else None."""
    if "fqn" in type_:
        return (type_["fqn"], False) if types.get(type_["fqn"], {}).get("datatype") else None
    if "collection" in type_:
        element = type_["collection"]["elementtype"]
        if type_["collection"]["kind"] == "array" and "fqn" in element and element["fqn"] in types:
            return element["fqn"], True
        return None
    for member in type_.get("union", {}).get("types", []):
        found = _block_fqn(types, member)
        if found:
            return found[0], True
    return None


def _block_schema(types: dict, fqn: str) -> tuple[dict, str]:
    attributes: dict[str, bool] = {}
    blocks: dict[str, dict] = {}
    version = ""
    for prop in _struct_props(types, fqn):
        docs = prop.get("docs", {})
        match = ANCHOR.search(docs.get("remarks", "") + docs.get("summary", ""))
        name = match.group(2) if match else _snake(prop["name"])
        version = version or (match.group(1) if match else "")
        required = not prop.get("optional", False)
        nested = _block_fqn(types, prop["type"])
        if nested:
            schema, _ = _block_schema(types, nested[0])
            blocks[name] = {"required": required, **schema}
        else:
            attributes[name] = required
    return {"attributes": attributes, "blocks": blocks}, version


def extract(assembly: dict) -> dict:
    """``{"version", "resource": {type: block schema}, "data": {type: block schema}}``."""
    types = assembly["types"]
    by_namespace: dict[str, list[dict]] = {}
    for t in types.values():
        if t.get("kind") == "class" and t.get("initializer", {}).get("parameters"):
            by_namespace.setdefault(t["fqn"].rsplit(".", 1)[0], []).append(t)
    out: dict[str, Any] = {"version": "", "resource": {}, "data": {}}
    for submodule, info in assembly.get("submodules", {}).items():
        title = TITLE.search(info.get("readme", {}).get("markdown", ""))
        if not title:
            continue
        kind = "data" if title.group(1) else "resource"
        for cls in by_namespace.get(submodule, []):
            params = cls["initializer"]["parameters"]
            if [p["name"] for p in params[:3]] != ["scope", "id", "config"]:
                continue
            schema, version = _block_schema(types, params[2]["type"]["fqn"])
            out[kind][title.group(2)] = schema
            out["version"] = out["version"] or version
    return out


def provider_schema(provider: str = "google") -> dict:
    """The reduced schema of ``provider`` ("google" or "google-beta"), cached."""
    distribution = DISTRIBUTIONS[provider]
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError as exc:
        raise SchemaUnavailable(f"{distribution} is not installed: {INSTALL}") from exc
    cached = CACHE / f"{distribution}-{version}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    schema = extract(_assembly(distribution))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema, sort_keys=True))
    tmp.replace(cached)
    return schema


# --- checking terraform/ ------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    where: str  # file:type.name
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and v.get("__is_block__") for v in value
    )


def check_body(body: dict, schema: dict, where: str, path: str = "") -> list[Problem]:
    """Arguments and nested blocks of one block against its schema."""
    problems: list[Problem] = []
    present: set[str] = set()
    for key, value in body.items():
        at = f"{path}{key}"
        if key == "__is_block__" or (not path and key in META_ARGUMENTS):
            continue
        if not path and key in META_BLOCKS:
            continue
        if key == "dynamic":
            for item in value:
                for name, spec in item.items():
                    if name == "__is_block__":
                        continue
                    if name not in schema["blocks"]:
                        problems.append(Problem(where, f"unknown block {path}{name} (dynamic)"))
                        continue
                    present.add(name)
                    for content in spec.get("content", []):
                        problems += check_body(
                            content, schema["blocks"][name], where, f"{path}{name}."
                        )
            continue
        if key in schema["attributes"]:
            present.add(key)
            if _is_block(value):
                problems.append(Problem(where, f"{at} is an argument, written as a block"))
        elif key in schema["blocks"]:
            present.add(key)
            if not _is_block(value):
                problems.append(Problem(where, f"{at} is a block, written as an argument"))
                continue
            for item in value:
                problems += check_body(item, schema["blocks"][key], where, f"{at}.")
        else:
            problems.append(Problem(where, f"unknown argument or block {at}"))
    for name, required in schema["attributes"].items():
        if required and name not in present:
            problems.append(Problem(where, f"missing required argument {path}{name}"))
    for name, spec in schema["blocks"].items():
        if spec["required"] and name not in present:
            problems.append(Problem(where, f"missing required block {path}{name}"))
    return problems


def _load(path: Path) -> dict:
    with path.open() as fh:
        return hcl2.load(fh, serialization_options=OPTIONS)


def _variables(folder: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in sorted(folder.glob("*.tf")):
        for item in _load(path).get("variable", []):
            out.update({k: v for k, v in item.items() if k != "__is_block__"})
    return out


def _provider_of(body: dict) -> str:
    provider = str(body.get("provider", "google")).strip("${}")
    return provider.split(".", 1)[0]


def _check_blocks(doc: dict, rel: str, schemas: dict[str, dict]) -> list[Problem]:
    problems: list[Problem] = []
    for kind in ("resource", "data"):
        for item in doc.get(kind, []):
            for rtype, named in item.items():
                if rtype == "__is_block__" or not rtype.startswith("google_"):
                    continue
                for name, body in named.items():
                    if name == "__is_block__":
                        continue
                    where = f"{rel}:{'data.' if kind == 'data' else ''}{rtype}.{name}"
                    provider = _provider_of(body)
                    schema = schemas[provider][kind].get(rtype)
                    if schema is None:
                        release = f"{provider} {schemas[provider]['version']}"
                        problems.append(Problem(where, f"no {kind} type {rtype} in {release}"))
                        continue
                    problems += check_body(body, schema, where)
    return problems


def check_tree(root: Path, schemas: dict[str, dict] | None = None) -> list[Problem]:
    """Every module under ``root`` (the root module and each module it calls)."""
    schemas = schemas if schemas is not None else {p: provider_schema(p) for p in DISTRIBUTIONS}
    problems: list[Problem] = []
    folders = [root, *sorted(p for p in (root / "modules").glob("*") if p.is_dir())]
    for folder in folders:
        for path in sorted(folder.glob("*.tf")):
            rel = path.relative_to(root).as_posix()
            doc = _load(path)
            problems += _check_blocks(doc, rel, schemas)
            for item in doc.get("module", []):
                for call, args in item.items():
                    if call == "__is_block__":
                        continue
                    source = args.get("source", "")
                    if not source.startswith("./"):
                        continue
                    declared = _variables((folder / source).resolve())
                    passed = set(args) - MODULE_META - {"__is_block__"}
                    where = f"{rel}:module.{call}"
                    for name in sorted(passed - set(declared)):
                        problems.append(Problem(where, f"passes undeclared variable {name}"))
                    for name in sorted(n for n, v in declared.items() if "default" not in v):
                        if name not in passed:
                            problems.append(Problem(where, f"misses required variable {name}"))
    return problems
