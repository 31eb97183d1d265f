"""``simrec run`` takes one flag per model parameter, declared by simrec.core.params, and
turns them into the settings the run reads (simrec.config.model_settings)."""

from __future__ import annotations

import pytest

from simrec.cli import build_parser
from simrec.config import Settings, model_settings
from simrec.core.actions import ActionWeights
from simrec.core.params import DEFAULTS, NAMES, overrides_from_args


def _run_args(*flags: str):
    return build_parser().parse_args(["run", "--events", "e.csv", "--workdir", "w", *flags])


def test_run_has_a_flag_for_every_model_parameter() -> None:
    args = _run_args()
    assert all(hasattr(args, name) for name in NAMES)
    assert overrides_from_args(args) == {}


def test_model_flags_become_the_runs_settings() -> None:
    args = _run_args("--top-k", "5", "--weights", '{"purchase": 4}', "--shrinkage", "3",
                     "--user-weighting", "log")  # fmt: skip
    settings = Settings(**model_settings(overrides_from_args(args)))
    weights = ActionWeights(browsed=DEFAULTS.weights.browsed, basket=DEFAULTS.weights.basket,
                            purchase=4.0)  # fmt: skip
    assert settings.model == DEFAULTS.replace(
        top_k=5, weights=weights, shrinkage=3.0, user_weighting="log"
    )


def test_an_unknown_action_in_weights_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown action 'bought'"):
        model_settings({"weights": {"bought": 1.0}})
