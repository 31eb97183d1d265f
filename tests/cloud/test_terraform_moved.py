"""terraform/moved.tf: what an older release declared at another address is moved, never
destroyed and recreated (Terraform docs: refactoring, moved blocks). No provider can be
downloaded here, so no ``terraform plan`` runs against an old state; each move is checked
against the tree as Terraform resolves it instead: the old address is declared no more, the
new one is an instance of a declared resource (its for_each key exists), and every object the
older release held at a moved address is accounted for."""

from __future__ import annotations

import re

import pytest

from tests.cloud.test_terraform import child_of, module

#: Addresses of the release before the moves whose objects now live elsewhere. The buckets
#: hold the exports and the served models: recreating them would lose them; a grant
#: recreated is missing between its destroy and its create.
OLD_ADDRESSES = {
    "module.storage.google_storage_bucket.data",
    "module.storage.google_storage_bucket.models",
    "module.storage.google_storage_bucket.staging",
    "module.iam.google_project_iam_member.dataproc_worker",
    "module.iam.google_storage_bucket_iam_member.dataflow_models_writer",
    "module.iam.google_service_account_iam_member.pubsub_token_creator",
    "module.iam.google_artifact_registry_repository_iam_member.build_image_writer",
    "module.iam.google_project_iam_member.dataflow_datastore_user[0]",
    "module.pubsub.google_pubsub_topic.nightly",
    "module.pubsub.google_pubsub_topic.dead_letter",
    "module.functions.google_pubsub_topic.job_watch",
    "module.pubsub.google_cloud_scheduler_job.nightly",
    "module.functions.google_cloud_scheduler_job.job_watch",
    "module.functions.google_eventarc_trigger.dataflow_status",
    "module.functions.google_eventarc_trigger.dataproc_audit",
    "module.functions.google_eventarc_trigger.job_watch",
}
ADDRESS = re.compile(r'^\$\{(?:module\.(\w+)\.)?(\w+)\.(\w+)(?:\["([\w-]+)"\]|\[(\d+)\])?\}$')


def _parse(address: str) -> tuple[str, str, str, str | None]:
    """(module folder, resource type, name, instance key) of a moved block's address."""
    match = ADDRESS.match(address)
    assert match, f"not a resource address: {address}"
    call, rtype, name, key, index = match.groups()
    return (child_of(call) if call else "", rtype, name, key if key is not None else index)


def _moves() -> list[tuple[str, str]]:
    return [(m["from"], m["to"]) for m in module().moved]


def test_every_old_address_is_moved_once() -> None:
    sources = [f"${{{a}}}" for a in OLD_ADDRESSES]
    moved_from = [source for source, _ in _moves()]
    assert sorted(moved_from) == sorted(set(moved_from)), "an address is moved twice"
    assert set(sources) <= set(moved_from)
    targets = [target for _, target in _moves()]
    assert len(targets) == len(set(targets)), "two objects moved to one address"


@pytest.mark.parametrize(("source", "target"), _moves())
def test_a_move_leads_from_a_gone_address_to_a_declared_instance(source, target) -> None:
    old_rel, old_type, old_name, _ = _parse(source)
    assert (old_type, old_name) not in module(old_rel).resources, f"{source} is still declared"
    rel, rtype, name, key = _parse(target)
    assert rtype == old_type, "a move cannot change the resource type"
    body = module(rel).resource(rtype, name)
    if key is None:
        assert "for_each" not in body and "count" not in body, target
        return
    assert key in _keys(rel, body["for_each"]), f"{target}: no key {key} in its for_each"


def _keys(rel: str, for_each: str) -> set[str]:
    """Instance keys of a for_each over a local map, or over one group of a local that
    groups a map by an attribute (modules/iam: local.grants_on.<on> of local.grants)."""
    local = re.fullmatch(r"\$\{local\.(\w+)(?:\.(\w+))?\}", for_each)
    assert local, f"for_each is not a local map: {for_each}"
    name, group = local.groups()
    value = module(rel).locals[name]
    if group is None:
        return set(value)
    by = re.search(r"in local\.(\w+) : k => g if g\.(\w+) == \2\b", value)
    assert by, f"local.{name} does not group a local map: {value}"
    source, attribute = by.groups()
    return {k for k, g in module(rel).locals[source].items() if g[attribute] == group}
