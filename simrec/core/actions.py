"""Shopper actions and their weights: defined once, used by training and serving."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    BROWSED = "browsed"
    BASKET = "basket"
    PURCHASE = "purchase"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)

#: GA4 export ``event_name`` -> simrec action (default of ``SIMREC_GA4_EVENT_ACTIONS``).
#: List events (``view_item_list``, ``view_promotion``) and checkout steps without intent
#: for one item are left out; events of other names are counted per name, never used.
GA4_EVENT_ACTIONS: dict[str, str] = {
    "view_item": Action.BROWSED,
    "select_item": Action.BROWSED,
    "add_to_cart": Action.BASKET,
    "add_to_wishlist": Action.BASKET,
    "begin_checkout": Action.BASKET,
    "purchase": Action.PURCHASE,
}
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")  # GA4's event name rules


def format_event_actions(mapping: dict[str, str]) -> str:
    """``name=action,...``: the settings' text form of an event mapping."""
    return ",".join(f"{name}={Action(action).value}" for name, action in mapping.items())


def parse_event_actions(text: str) -> dict[str, str]:
    """Parse ``name=action,...``; raises ``ValueError`` naming the bad entry."""
    mapping: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, action = (part.strip() for part in entry.partition("="))
        if not sep or not _EVENT_NAME.match(name) or action not in ACTIONS:
            raise ValueError(
                f"bad event mapping {entry!r}: expected event_name=action with action "
                f"one of {', '.join(ACTIONS)}"
            )
        mapping[name] = action
    if not mapping:
        raise ValueError("the event mapping maps no event to an action")
    return mapping


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
