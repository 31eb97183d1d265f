"""``simrec recommend`` / ``simrec similar`` answer what the endpoint answers: the same
recommender, every endpoint parameter an option, bad values the endpoint's 400."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simrec import publishing
from simrec.cli import local_settings, main
from simrec.local.runner import Workdir
from simrec.serving import api
from simrec.serving.api import ServingApp
from simrec.serving.parameters import ENDPOINT_PARAMS
from tests.http.test_current_item_filters import CATALOG, snapshot


@pytest.fixture
def workdir(tmp_path: Path):
    api.HOLDERS.clear()
    settings = local_settings(Workdir(tmp_path))
    publishing.write_snapshot(settings.models_root, settings.tenant, snapshot(CATALOG))
    yield tmp_path, ServingApp(settings)
    api.HOLDERS.clear()


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_recommend_and_similar_print_the_endpoint_answer(workdir, capsys) -> None:
    root, app = workdir
    code, body = run(capsys, "recommend", "--workdir", str(root), "--browsed", "a,e",
                     "--same-category", "--price-within", "2", "--n", "3", "--json")  # fmt: skip
    assert code == 0
    expected = app.recommendations(
        {"browsed": "a,e", "same_category": "true", "price_within": "2", "n": "3"}
    )
    assert (body, 200) == expected and body["items"]
    code, body = run(capsys, "similar", "a", "--workdir", str(root), "--exclude", "b",
                     "--same-category", "false", "--json")  # fmt: skip
    assert code == 0 and (body, 200) == app.similar({"sku": "a", "exclude": "b", "n": "10",
                                                     "same_category": "false"})  # fmt: skip
    assert "b" not in [item["sku"] for item in body["items"]]


def test_a_bad_value_is_the_endpoints_400(workdir, capsys) -> None:
    root, _ = workdir
    code, body = run(capsys, "similar", "a", "--workdir", str(root), "--price-within", "0.5")
    assert code == 1 and body["field"] == "price_within"


@pytest.mark.parametrize("command,path", [("recommend", "/recommendations"),
                                          ("similar", "/similar")])  # fmt: skip
def test_every_endpoint_parameter_is_an_option(command: str, path: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for name in ENDPOINT_PARAMS[path]:
        assert (f"--{name.replace('_', '-')}" in text) or name == "sku", name
