"""Settings, run identity, the nightly request and CloudEvent parsing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from simrec.config import Settings, settings_env_names, settings_to_env
from simrec.core import layout
from simrec.core.actions import ActionWeights
from simrec.core.params import BOUNDS, NAMES, ModelParams
from simrec.core.runs import RunParams
from simrec.stages.cloudevents import (
    BadEvent,
    make_pubsub_event,
    make_storage_event,
    pubsub_payload,
    storage_object,
)
from simrec.stages.requests import run_params

README = Path(__file__).resolve().parents[2] / "README.md"
TODAY = dt.date(2024, 4, 1)


def test_readme_documents_every_setting():
    text = README.read_text()
    documented = set(re.findall(r"`(SIMREC_[A-Z0-9_]+)`", text))
    missing = [name for name in settings_env_names() if name not in documented]
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_settings_round_trip_through_the_environment(monkeypatch):
    settings = Settings(threshold=0.25, tenant="shop-a", weight_basket=3.0, top_k=7)
    for key in list(os.environ):
        if key.startswith("SIMREC_"):
            monkeypatch.delenv(key)
    for key, value in settings_to_env(settings).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings
    assert Settings().weights == ActionWeights(browsed=0.5, basket=3.0, purchase=6.0)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="threshold"):
        Settings(threshold=1.5)
    with pytest.raises(ValueError, match="tenant"):
        Settings(tenant="a/b")


def test_run_id_is_stable_and_changes_with_every_parameter():
    base = RunParams("default", TODAY)
    assert base.run_id == RunParams("default", TODAY).run_id
    assert base.run_id.startswith("2024-04-01-")
    changes: list[dict] = [
        {name: _other_value(name, getattr(base.model, name))} for name in NAMES
    ]
    variants = [RunParams("default", TODAY, window_days=7)] + [
        RunParams("default", TODAY, model=base.model.replace(**c)) for c in changes
    ]
    assert len({v.run_id for v in variants} | {base.run_id}) == len(variants) + 1
    assert RunParams.from_json(json.loads(json.dumps(base.to_json()))) == base
    assert (base.start_date, base.end_date) == (dt.date(2024, 3, 2), dt.date(2024, 3, 31))
    assert len(base.days()) == 30 and base.days()[-1] == base.end_date


def _other_value(name: str, value: object) -> object:
    """A valid value different from ``value`` for the parameter ``name``."""
    if name == "weights":
        return ActionWeights(purchase=5.0)
    if name == "user_weighting":
        return "log" if value != "log" else "power"
    if name in ("basket_key", "basket_actions"):
        return {"order": "session", "strict": "relaxed"}[value]
    if name == "min_items_per_user":
        return value + 1
    if not value:  # off (0): switched on; 1 is inside every bound
        return 1
    return value / 2 if isinstance(value, float) else value + 1


def test_every_setting_of_the_model_comes_from_model_params():
    """Settings derive each model parameter's default and bounds from ModelParams."""
    assert Settings().model == ModelParams()
    for name, bounds in BOUNDS.items():
        field = Settings.model_fields[name]
        assert field.default == getattr(ModelParams(), name)
        assert field.description == bounds.description
        if bounds.le is not None:
            with pytest.raises(ValueError, match=name):
                Settings(**{name: bounds.le + 1})
        if bounds.ge is not None:
            with pytest.raises(ValueError, match=name):
                Settings(**{name: bounds.ge - 1})
    with pytest.raises(ValueError, match="max_items_per_user"):
        Settings(min_items_per_user=10, max_items_per_user=5)


def test_layout_classifies_only_manifests():
    assert layout.classify_object("exports/t1/runs/r1/_MANIFEST.json") == ("export", "t1", "r1")
    assert layout.classify_object("pre/fix/similarities/t1/r1/_MANIFEST.json") == (
        "similarities", "t1", "r1",
    )
    for name in (
        "exports/t1/dt=2024-01-01/part-0.parquet",
        "similarities/t1/r1/neighbors/part-0.parquet",
        "models/t1/LATEST",
        "exports/t1/runs/r1/rejects/part-0.parquet",
    ):
        assert layout.classify_object(name) is None


def test_nightly_request_defaults_and_overrides():
    settings = Settings(tenant="shop", window_days=14)
    params = run_params({}, settings, TODAY)
    assert (params.tenant, params.date, params.window_days) == ("shop", TODAY, 14)
    params = run_params({"date": "2024-02-02", "tenant": "other", "window_days": "3"},
                        settings, TODAY)
    assert (params.tenant, params.date, params.window_days) == ("other", dt.date(2024, 2, 2), 3)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"date": "02/02/2024"}, "date"),
        ({"window_days": "many"}, "window_days"),
        ({"window_days": 0}, "window_days"),
        ({"threshold": 2}, "threshold"),
        ({"tenant": "a/b"}, "tenant"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_nightly_request_errors_name_the_field(payload, field):
    with pytest.raises(BadEvent, match=field):
        run_params(payload, Settings(), TODAY)


def test_cloudevents_round_trip():
    event = make_pubsub_event("p", "simrec-nightly", {"tenant": "x"})
    assert pubsub_payload(event) == {"tenant": "x"}
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    storage = make_storage_event("bucket", "a/b.json", 3, 7)
    assert storage_object(storage) == ("bucket", "a/b.json")


def test_pubsub_payload_rejects_garbage():
    event = make_pubsub_event("p", "t", {})
    event.data["message"]["data"] = base64.b64encode(b"not json").decode()
    with pytest.raises(BadEvent, match="base64 JSON"):
        pubsub_payload(event)
    event.data["message"]["data"] = base64.b64encode(b"[1, 2]").decode()
    with pytest.raises(BadEvent, match="JSON object"):
        pubsub_payload(event)
