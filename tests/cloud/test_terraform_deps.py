"""Deploy order on a fresh project: what uses a grant or a service agent waits for it.

Terraform orders resources by their references and ``depends_on`` (a module-level
``depends_on`` makes every resource of the module wait for every resource of the other).
This follows both, through module boundaries, and checks that every resource that uses a
grant or a service agent (functions and their triggers, the recommend service, the uptime
check and its alert, the dead-letter wiring) is ordered after that grant and after the
documented propagation wait (``time_sleep``; IAM changes are eventually consistent and the
provider's Cloud Functions examples wait after granting the build account).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.cloud.test_terraform import (
    GRANT_KINDS,
    MODULES,
    Module,
    _strings,
    child_of,
    module,
)

REF = re.compile(
    r"(?<![\w.])(?:(data)\.)?((?:google|time|terraform)_[a-z0-9_]+|terraform_data)\.([a-z0-9_]+)"
)
MODULE_REF = re.compile(r"(?<![\w.])module\.(\w+)(?:\.(\w+))?")
VAR_REF = re.compile(r"(?<![\w.])var\.(\w+)")
LOCAL_REF = re.compile(r"(?<![\w.])local\.(\w+)")
IAM = "modules/iam"
GRANTS_WAIT = f"{IAM}:time_sleep.grants"
AGENTS_WAIT = f"{IAM}:time_sleep.agents"
AGENTS = f"{IAM}:google_project_service_identity.agent"


def _rels() -> list[str]:
    return ["", *[f"modules/{m}" for m in MODULES]]


def _address(rel: str, data: str | None, kind: str, name: str) -> str:
    return f"{rel}:{'data.' if data else ''}{kind}.{name}"


def _all_resources(rel: str) -> set[str]:
    mod = module(rel)
    return {f"{rel}:{k}.{n}" for k, n in mod.resources} | {
        f"{rel}:data.{k}.{n}" for k, n in mod.data
    }


def _call_of(rel: str) -> tuple[str, dict] | None:
    for name, args in module().calls.items():
        if child_of(name) == rel:
            return name, args
    return None


@cache
def _expression_deps(rel: str, text: str) -> frozenset[str]:
    """Resources an expression (any string in ``rel``) refers to, directly or through
    locals, input variables (the caller's argument) and module outputs."""
    out: set[str] = set()
    for data, kind, name in REF.findall(text):
        if kind == "terraform_data" or kind.startswith(("google_", "time_")):
            out.add(_address(rel, data, kind, name))
    mod = module(rel)
    for name in LOCAL_REF.findall(text):
        out |= _deps_of_value(rel, mod.locals.get(name))
    if rel:
        call = _call_of(rel)
        assert call, rel
        for name in VAR_REF.findall(text):
            if name in call[1]:
                out |= _deps_of_value("", call[1][name])
    else:
        for call_name, output in MODULE_REF.findall(text):
            child = child_of(call_name)
            if output:
                body = module(child).outputs.get(output, {})
                out |= _deps_of_value(child, body.get("value"))
                out |= _deps_of_value(child, body.get("depends_on"))
            else:
                out |= _all_resources(child)
    return frozenset(out)


def _deps_of_value(rel: str, value: Any) -> set[str]:
    out: set[str] = set()
    for text in _strings(value):
        if "${" in text or text.startswith(("google_", "time_", "module.")):
            out |= _expression_deps(rel, text)
    return out


def _direct(address: str) -> set[str]:
    rel, _, ref = address.partition(":")
    mod: Module = module(rel)
    if ref.startswith("data."):
        kind, name = ref[len("data.") :].split(".")
        body = mod.data[(kind, name)]
    else:
        kind, name = ref.split(".")
        body = mod.resources[(kind, name)]
    deps = _deps_of_value(rel, body)
    call = _call_of(rel) if rel else None
    if call:  # module-level depends_on and the module's own arguments
        deps |= _deps_of_value("", call[1].get("depends_on", []))
    return deps - {address}


@cache
def reachable(address: str) -> frozenset[str]:
    """Everything ``address`` waits for (transitively)."""
    seen: set[str] = set()
    stack = [address]
    while stack:
        for dep in _direct(stack.pop()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return frozenset(seen)


def _grants_in(rel: str, *names: str) -> list[str]:
    """The resources that make the named grants (all of the module's without names): a
    grant of modules/iam's local.grants is made by the grant resource of its kind."""
    mod = module(rel)
    found = [f"{rel}:{k}.{n}" for k, n in mod.resources if k.endswith("_iam_member")]
    table = mod.locals.get("grants", {})
    unknown = set(names) - set(table) - {a.rsplit(".", 1)[1] for a in found}
    assert not unknown, f"{rel} makes no grant {sorted(unknown)}"
    by_entry = {f"{rel}:{GRANT_KINDS[table[n]['on']]}.grant" for n in names if n in table}
    return [a for a in found if not names or a.rsplit(".", 1)[1] in names or a in by_entry]


# Every resource that uses a grant or a service agent: (address, grants it needs, waits).
USERS = {
    # Cloud Build (build account), Eventarc (trigger identity, Eventarc and storage agents,
    # Pub/Sub token creation) and the runtime identities.
    "modules/functions:google_cloudfunctions2_function.fn": (
        _grants_in(IAM), [GRANTS_WAIT, AGENTS_WAIT]
    ),
    # Every trigger's subscription (the functions' and the job-end ones) gets its
    # dead-letter policy as the Pub/Sub agent.
    "modules/functions:terraform_data.dead_letter": (
        _grants_in(IAM, "pubsub_token_creator"), [GRANTS_WAIT, AGENTS_WAIT]
    ),
    # The job-end triggers (job_completion.tf): Eventarc (its agent, the trigger identity's
    # event receiver, Pub/Sub token creation for the push); then their dead-letter policy.
    "modules/functions:google_eventarc_trigger.job_end": (
        _grants_in(IAM, "trigger_event_receiver", "eventarc_agent", "pubsub_token_creator"),
        [GRANTS_WAIT, AGENTS_WAIT],
    ),
    "modules/serving:google_cloud_run_v2_service.recommend": (
        _grants_in(IAM, "recommend_models_reader", "recommend_datastore_viewer"), [GRANTS_WAIT]
    ),
    "modules/monitoring:google_monitoring_uptime_check_config.endpoint": (
        _grants_in("modules/monitoring", "uptime_invoker"),
        ["modules/monitoring:time_sleep.uptime_invoker", AGENTS_WAIT],
    ),
    "modules/monitoring:google_monitoring_alert_policy.endpoint_down": (
        _grants_in("modules/monitoring", "uptime_invoker"),
        ["modules/monitoring:time_sleep.uptime_invoker", AGENTS_WAIT],
    ),
    # Grants to a service agent wait for the agent to exist and propagate.
    "modules/pubsub:google_pubsub_topic_iam_member.dead_letter_publisher": ([], [AGENTS_WAIT]),
    "modules/monitoring:google_cloud_run_v2_service_iam_member.uptime_invoker": (
        [], [AGENTS_WAIT]
    ),
    **{
        a: ([], [AGENTS_WAIT])
        for a in _grants_in(IAM, "pubsub_token_creator", "eventarc_agent", "gcs_agent_publisher")
    },
}


@pytest.mark.parametrize("user", sorted(USERS))
def test_each_user_of_a_grant_waits_for_it_and_for_the_documented_wait(user: str) -> None:
    grants, waits = USERS[user]
    after = reachable(user)
    for needed in [*grants, *waits]:
        assert needed in after, f"{user} does not wait for {needed}"


def test_the_waits_follow_every_grant_and_agent() -> None:
    iam = module(IAM)
    wait = iam.resource("time_sleep", "grants")
    listed = {d.strip("${}") for d in wait["depends_on"]}
    grants = {a.split(":", 1)[1] for a in _grants_in(IAM)}
    assert grants - listed == set(), f"grants the wait does not follow: {grants - listed}"
    for name in ("grants", "agents"):
        duration = iam.resource("time_sleep", name)["create_duration"]
        seconds = int(re.fullmatch(r"(\d+)s", iam.locals["propagation_wait"]).group(1))
        assert duration == "${local.propagation_wait}" and seconds >= 60
    agents = reachable(AGENTS_WAIT)
    assert AGENTS in agents and f"{IAM}:data.google_storage_project_service_account.gcs" in agents
    # Agents are created only after their APIs are enabled.
    assert any(a.startswith(":google_project_service.enabled") for a in reachable(AGENTS))


def test_every_grant_to_an_agent_names_the_created_identity() -> None:
    """No agent e-mail is spelled by hand (service-<number>@gcp-sa-...): it comes from the
    resource that creates the agent, so using it orders the grant after the creation."""
    for rel in _rels():
        text = module(rel).text
        assert "@gcp-sa-" not in text, f"{rel or 'root'} spells an agent e-mail"


def test_the_failed_function_alert_needs_no_fresh_log_metric() -> None:
    monitoring = module("modules/monitoring")
    policy = monitoring.resource("google_monitoring_alert_policy", "function_failed")
    (condition,) = policy["conditions"]
    assert "condition_matched_log" in condition
    after = reachable("modules/monitoring:google_monitoring_alert_policy.function_failed")
    assert not [a for a in after if "google_logging_metric" in a]
    # Log-match conditions require a notification rate limit.
    assert block_of(block_of(policy, "alert_strategy"), "notification_rate_limit")["period"]


def block_of(body: dict, name: str) -> dict:
    (value,) = body[name]
    return value


#: Resources that name an identity but use no grant when they are created (checked on use).
NO_GRANT_AT_CREATION = {
    # The template only names the Dataproc identity; the workflow that runs as it starts
    # at night, long after the grants (module.dataproc depends on module.iam anyway).
    "modules/dataproc:google_dataproc_workflow_template.dimsum":
        "names the VM identity; used when a workflow is instantiated",
    # Grants themselves (they are what the users wait for).
    "modules/functions:google_cloud_run_v2_service_iam_member.trigger_invoker":
        "a grant to the trigger identity, used by deliveries",
    "modules/serving:google_secret_manager_secret_iam_member.api_keys_reader":
        "a grant to the recommend identity; until it propagates no key is valid, and the "
        "service re-reads the keys every api_keys_refresh_seconds",
}


def test_every_resource_that_names_an_identity_is_listed() -> None:
    """A new resource that names a service account or an agent is either in USERS (and so
    checked to wait for its grants) or listed above with the reason it needs none."""
    pattern = re.compile(r"var\.(service_accounts?|pubsub_agent|monitoring_agent)\b|"
                         r"local\.uptime_agent|service_agent_authentication")  # fmt: skip
    for rel in _rels():
        if rel == IAM:
            continue
        for (kind, name), body in module(rel).resources.items():
            address = f"{rel}:{kind}.{name}"
            if pattern.search(" ".join(_strings(body))) or (
                "service_agent_authentication" in json.dumps(body)
            ):
                assert address in USERS or address in NO_GRANT_AT_CREATION, (
                    f"{address} names an identity: add it to USERS (with its grants and "
                    "waits) or to NO_GRANT_AT_CREATION with the reason"
                )


def test_the_graph_has_no_cycle() -> None:
    """What terraform plan would refuse ("Cycle: ..."): no resource waits for itself."""
    for rel in _rels():
        for address in sorted(_all_resources(rel)):
            assert address not in reachable(address), f"{address} depends on itself"
            # _direct drops self-references (an attribute read of its own); depends_on
            # naming the resource itself is what plan refuses ("Self-referential block").
            rel_, _, ref = address.partition(":")
            kind, _, name = ref.removeprefix("data.").partition(".")
            table = module(rel_).data if ref.startswith("data.") else module(rel_).resources
            own = _deps_of_value(rel_, table[(kind, name)].get("depends_on", []))
            assert address not in own, f"{address} lists itself in depends_on"
