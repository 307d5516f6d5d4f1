"""Architecture name -> the torch.nn factory (imported only when used) and its export hints.

Architectures are code only: they know no URL, no cache and no licence. Networks are built on
torch's ``meta`` device and then take the checkpoint's tensors as their own (``assign=True``),
so loading a 1.4 GB checkpoint never holds a second, randomly initialised copy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from depthlite.errors import WeightsError
from depthlite.zoo.cards import ModelCard
from depthlite.zoo.catalog import CARDS

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture_of",
    "build_network",
    "identify_checkpoint",
    "meta_network",
    "state_dict_layout",
]


@dataclass(frozen=True)
class Architecture:
    """Where the network's code lives and how to export it to ONNX."""

    factory: str  # "module:attribute"
    # The traced input (height, width) and the other sizes the exported graph must reproduce
    # torch at; every side a multiple of the card's ``multiple_of``.
    dummy_size: tuple[int, int]
    verify_sizes: tuple[tuple[int, int], ...]
    output_name: str = "depth"
    # Operators static INT8 leaves in float for this network. A transformer's residual stream
    # (Add), LayerScale and GELU (Mul) and attention weights (Softmax) span ranges 8 bits
    # cannot hold: quantizing them costs Depth Anything V2 its agreement with FP32 (AbsRel
    # 0.97 -> 0.19 on synthetic weights when they stay float), while a CNN gains speed from
    # keeping its Adds in 8 bits.
    int8_float_ops: frozenset[str] = frozenset()

    def load_factory(self) -> Any:
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


_TRANSFORMER_FLOAT_OPS = frozenset({"Add", "Mul", "Softmax"})

ARCHITECTURES: dict[str, Architecture] = {
    "midas_small": Architecture(
        "depthlite.models.midas_small:MidasSmall", (256, 256), ((256, 256), (192, 256)),
        "inverse_depth",
    ),
    "midas_v21": Architecture(
        "depthlite.models.midas_large:MidasLarge", (256, 256), ((384, 512), (224, 384)),
        "inverse_depth",
    ),
    "dpt": Architecture(
        "depthlite.models.dpt:DPTDepth", (256, 256), ((384, 512), (224, 384)), "inverse_depth",
        _TRANSFORMER_FLOAT_OPS,
    ),
    "depth_anything_v2": Architecture(
        # 518x392 keeps one side at the 37-patch training grid (an axis whose size does not
        # change is where runtimes have dropped the resize's scale); both cheaper than 518x686.
        "depthlite.models.depth_anything:DepthAnythingV2", (518, 518), ((364, 490), (518, 392)),
        "depth", _TRANSFORMER_FLOAT_OPS,
    ),
}  # fmt: skip


def architecture_of(card: ModelCard) -> Architecture:
    return ARCHITECTURES[card.architecture]


def _construct(card: ModelCard, *, meta: bool) -> torch.nn.Module:
    import torch

    factory = architecture_of(card).load_factory()
    if not meta:
        return factory(**card.arch_kwargs)
    with torch.device("meta"):
        return factory(**card.arch_kwargs)


def meta_network(card: ModelCard) -> torch.nn.Module:
    """The card's network on the ``meta`` device: keys and shapes, no memory for values."""
    return _construct(card, meta=True)


def build_network(
    card: ModelCard, state_dict: dict[str, torch.Tensor] | None = None
) -> torch.nn.Module:
    """The card's network in eval mode, loaded strictly from ``state_dict`` when given.

    Without a state_dict the network has the factory's own initial values (tests fill it).
    """
    if state_dict is None:
        return _construct(card, meta=False).eval()
    model = _construct(card, meta=True)
    _check_layout(card, model, state_dict)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval()


def _layout_problems(
    model: torch.nn.Module, state_dict: dict[str, Any]
) -> tuple[int, int, int, str]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [
        k
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    first = next(iter(missing or unexpected or reshaped), "")
    return len(missing), len(unexpected), len(reshaped), first


def _check_layout(card: ModelCard, model: torch.nn.Module, state_dict: dict[str, Any]) -> None:
    """One readable line instead of torch's pages of key names for a foreign checkpoint."""
    missing, unexpected, reshaped, first = _layout_problems(model, state_dict)
    if not (missing or unexpected or reshaped):
        return
    looks_like = identify_checkpoint(state_dict)
    hint = (
        f"; it has the layout of {' or '.join(looks_like)}: pass --model {looks_like[0]}"
        if looks_like
        else ""
    )
    raise WeightsError(
        f"not a {card.name} checkpoint: {missing} missing keys, {unexpected} unexpected, "
        f"{reshaped} with other shapes (first: {first!r}){hint}"
    )


def identify_checkpoint(state_dict: dict[str, Any]) -> list[str]:
    """The cards whose network has exactly this key layout (none: an unknown checkpoint).

    Cards that share a network (Depth Anything V2 Small and its metric heads) are told apart
    by nothing in the weights, so all of them are named.
    """
    found: dict[tuple[str, tuple[tuple[str, Any], ...]], bool] = {}
    names = []
    for card in CARDS.values():
        key = (card.architecture, tuple((k, v) for k, v in card.arch_args if k != "max_depth"))
        if key not in found:
            found[key] = _layout_problems(_construct(card, meta=True), state_dict)[:3] == (0, 0, 0)
        if found[key]:
            names.append(card.name)
    return names


def state_dict_layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    """``[key, shape, dtype]`` in order: what the conformance key lists record."""
    return [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    ]
