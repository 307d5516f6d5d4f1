"""The model zoo: cards (data), architectures (code), and the lookup by name or alias.

The CLI's choices, the API's enums, the web UI's picker and ``depthlite models`` are all
generated from :data:`CARDS`; nothing else restates a model's facts.
"""

from __future__ import annotations

from depthlite.errors import UnknownModelError
from depthlite.zoo.cards import Artifact, Licence, ModelCard, Output, Preprocess, Source
from depthlite.zoo.catalog import CARDS

__all__ = [
    "CARDS",
    "DEFAULT_MODEL",
    "Artifact",
    "Licence",
    "ModelCard",
    "Output",
    "Preprocess",
    "Source",
    "available_models",
    "get_card",
]

DEFAULT_MODEL = "midas_v21_small_256"


def available_models() -> list[str]:
    """Names of every known model, in table order."""
    return list(CARDS)


def get_card(name: str) -> ModelCard:
    """Look a model up by name or alias; the error lists the valid names."""
    card = CARDS.get(name)
    if card is not None:
        return card
    for card in CARDS.values():
        if name in card.aliases:
            return card
    raise UnknownModelError(
        f"unknown model {name!r}; known models: {', '.join(available_models())}"
    )
