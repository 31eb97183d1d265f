"""``simrec cloud rerun``: the nightly message on the Pub/Sub emulator, in the shape the
export function reads (the same ``force`` / ``publish`` fields as ``simrec run``)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from simrec.cli import main
from simrec.config import Settings
from simrec.local.runner import nightly_payload
from simrec.stages.cloudevents import make_pubsub_event, pubsub_payload
from simrec.stages.requests import run_params
from tests.cloud.wire import PROJECT

DATE = dt.date(2024, 3, 21)


def _pull_one(subscriber, subscription: str) -> dict:
    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=30)
    [received] = response.received_messages
    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
    return {"data": received.message.data, "attributes": dict(received.message.attributes)}


@pytest.mark.emulator
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"tenant": "shop-1", "date": "2024-03-21"}),
        (["--force"], {"tenant": "shop-1", "date": "2024-03-21", "force": True}),
        (["--publish"], {"tenant": "shop-1", "date": "2024-03-21", "publish": True}),
    ],
)
def test_rerun_publishes_the_nightly_message(
    pubsub_emulator, monkeypatch, tmp_path, flags, expected
) -> None:
    from google.cloud import pubsub_v1

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = f"nightly-{tmp_path.name}"
    publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
    subscription = subscriber.subscription_path(PROJECT, f"export-{tmp_path.name}")
    subscriber.create_subscription(name=subscription, topic=publisher.topic_path(PROJECT, topic))

    argv = ["cloud", "rerun", "--date", DATE.isoformat(), "--tenant", "shop-1",
            "--project", PROJECT, "--topic", topic, *flags]  # fmt: skip
    assert main(argv) == 0

    message = _pull_one(subscriber, subscription)
    payload = json.loads(message["data"])
    assert payload == expected == nightly_payload("shop-1", DATE, *(
        f in flags for f in ("--force", "--publish")
    ))
    assert message["attributes"] == {"source": "simrec-cli"}
    # The export function accepts it: the CloudEvent it receives carries the data base64.
    event = make_pubsub_event(PROJECT, topic, payload)
    assert json.loads(base64.b64decode(event.data["message"]["data"])) == payload
    params = run_params(pubsub_payload(event), Settings(), dt.date(2030, 1, 1))
    assert (params.tenant, params.date, params.publish) == ("shop-1", DATE, "--publish" in flags)


def test_rerun_needs_a_project(monkeypatch, capsys) -> None:
    monkeypatch.delenv("SIMREC_GCP_PROJECT", raising=False)
    assert main(["cloud", "rerun", "--date", DATE.isoformat()]) == 1
    assert "--project" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_force_and_publish_must_be_booleans(value) -> None:
    from simrec.stages.cloudevents import BadEvent

    for field in ("force", "publish"):
        with pytest.raises(BadEvent, match=field):
            run_params({field: value}, Settings(), DATE)
