"""CLI options that trade exactness for speed (kept out of ``common``, which is full)."""

from __future__ import annotations

import argparse

__all__ = ["add_fast_preprocess_option"]


def add_fast_preprocess_option(group: argparse._ArgumentGroup) -> None:
    """``--fast-preprocess``: off by default, so outputs stay those of the original code."""
    group.add_argument(
        "--fast-preprocess",
        action="store_true",
        default=False,
        help="decode JPEGs reduced (1/2-1/8, still >= the network input) and resize in "
        "float32: faster, values differ slightly from the official pipeline",
    )
