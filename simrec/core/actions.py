"""Shopper actions and their weights: defined once, used by training and serving."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    BROWSED = "browsed"
    BASKET = "basket"
    PURCHASE = "purchase"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)

#: GA4 export ``event_name`` -> simrec action.
GA4_EVENT_ACTIONS: dict[str, str] = {
    "view_item": Action.BROWSED,
    "add_to_cart": Action.BASKET,
    "purchase": Action.PURCHASE,
}


@dataclass(frozen=True)
class ActionWeights:
    """How much one event of each action says about a shopper's interest.

    Defaults are the original system's: browsed 0.5, basket 2, purchase 6.
    """

    browsed: float = 0.5
    basket: float = 2.0
    purchase: float = 6.0

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not value >= 0:
                raise ValueError(f"weight of {name!r} must be >= 0, got {value!r}")

    def of(self, action: str) -> float:
        try:
            return float(getattr(self, Action(action).value))
        except ValueError:
            raise ValueError(
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
            ) from None

    def as_dict(self) -> dict[str, float]:
        return {a: float(getattr(self, a)) for a in ACTIONS}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> ActionWeights:
        unknown = set(values) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown actions in weights: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in values.items()})
