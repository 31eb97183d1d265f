"""terraform/ against the real Google provider schema (tests/cloud/provider_schema.py): every
``google_*`` block's type, arguments, nested blocks and required fields, every module
call's variables; and planted mistakes that the checker must report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.cloud.provider_schema import (
    DISTRIBUTIONS,
    SchemaUnavailable,
    _load,
    check_tree,
    provider_schema,
)

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    try:
        return {p: provider_schema(p) for p in DISTRIBUTIONS}
    except SchemaUnavailable as exc:
        pytest.fail(str(exc))


def _constraint() -> tuple[int, int]:
    text = (TF / "versions.tf").read_text()
    pattern = r'source\s*=\s*"hashicorp/google"\s*\n\s*version\s*=\s*"~> (\d+)\.(\d+)"'
    major, minor = re.search(pattern, text).groups()
    return int(major), int(minor)


def test_the_schema_is_of_a_release_inside_the_version_constraint(schemas) -> None:
    major, minor = _constraint()
    for provider, schema in schemas.items():
        got = tuple(int(x) for x in schema["version"].split("."))
        # "~> 6.40" accepts 6.40 <= v < 7.
        assert got[0] == major and got[1] >= minor, (provider, schema["version"])
    google = schemas["google"]
    assert len(google["resource"]) > 1000 and len(google["data"]) > 300
    fn = google["resource"]["google_cloudfunctions2_function"]
    assert fn["attributes"]["name"] is True and fn["attributes"]["description"] is False
    assert "event_filters" in fn["blocks"]["event_trigger"]["blocks"]
    assert "google_project_service_identity" not in google["resource"]  # beta only
    assert "google_project_service_identity" in schemas["google-beta"]["resource"]


def test_every_google_block_and_module_call_matches_the_schema(schemas) -> None:
    problems = [str(p) for p in check_tree(TF, schemas)]
    assert problems == []


def test_the_checker_sees_every_module(schemas) -> None:
    """A check of nothing would pass: count the blocks it looked at."""
    seen = 0
    for path in TF.rglob("*.tf"):
        doc = _load(path)
        seen += sum(len(named) for item in doc.get("resource", []) for t, named in item.items()
                    if t.startswith("google_"))  # fmt: skip
    assert seen >= 35  # 41 blocks: the grants are one block per kind (modules/iam)


PLANTED = [
    pytest.param(
        "modules/functions/main.tf", "    runtime           = var.runtime\n",
        "    runtime           = var.runtime\n    runtime_version   = var.runtime\n",
        "modules/functions/main.tf:google_cloudfunctions2_function.fn: unknown argument or "
        "block build_config.runtime_version", id="wrong-nested-argument",
    ),
    pytest.param(
        "modules/serving/main.tf", "  location            = var.region\n", "",
        "modules/serving/main.tf:google_cloud_run_v2_service.recommend: missing required "
        "argument location", id="missing-required-argument",
    ),
    pytest.param(
        "modules/pubsub/main.tf", 'resource "google_pubsub_topic" "topic"',
        'resource "google_pubsub_topics" "topic"',
        "no resource type google_pubsub_topics", id="unknown-type",
    ),
    pytest.param(
        "modules/storage/main.tf", "      action {\n", "      action = {\n",
        "google_storage_bucket.bucket: lifecycle_rule.action is a block, written as an argument",
        id="block-as-argument",
    ),
    pytest.param(
        "modules/monitoring/main.tf",
        "  labels = {\n    email_address", "  labels {\n    email_address",
        "google_monitoring_notification_channel.email: labels is an argument, written as a block",
        id="argument-as-block",
    ),
    pytest.param(
        "modules/serving/main.tf", "          value = env.value\n", "          valu = env.value\n",
        "unknown argument or block template.containers.env.valu", id="wrong-argument-in-dynamic",
    ),
    pytest.param(
        "main.tf", "  schedule_time_zone = var.schedule_time_zone\n",
        "  schedule_time_zone = var.schedule_time_zone\n  bogus_input        = 1\n",
        "main.tf:module.pubsub: passes undeclared variable bogus_input", id="undeclared-variable",
    ),
    pytest.param(
        "main.tf", "  schedule           = var.schedule\n", "",
        "main.tf:module.pubsub: misses required variable schedule", id="missing-variable",
    ),
    pytest.param(
        "modules/monitoring/main.tf",
        '  display_name          = "simrec: nightly event dead-lettered"\n', "",
        "google_monitoring_alert_policy.run_failed: missing required argument display_name",
        id="missing-required-top-level",
    ),
]


@pytest.mark.parametrize(("rel", "old", "new", "expected"), PLANTED)
def test_a_planted_mistake_is_reported(schemas, tmp_path, rel, old, new, expected) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TF, copy)
    target = copy / rel
    text = target.read_text()
    assert text.count(old) == 1, f"plant site not unique in {rel}: {old!r}"
    target.write_text(text.replace(old, new))
    problems = [str(p) for p in check_tree(copy, schemas)]
    assert any(expected in p for p in problems), problems
    assert len(problems) == 1, problems  # only the planted one
