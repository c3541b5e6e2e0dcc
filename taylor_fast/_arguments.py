"""Value types for the commands' argparse options that refuse a number out of range while the
command line is parsed, before any work, with one line naming the option and the range:

    parser.add_argument("--iters", type=integer(1))          # argument --iters: expected an integer >= 1, got '0'
    parser.add_argument("--quality", type=integer(1, 100))
"""
from __future__ import annotations

import argparse


def _ranged(kind, noun: str, low, high):
    wanted = f"{noun} in {low}..{high}" if high is not None else f"{noun} >= {low:g}"

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not low <= value <= (value if high is None else high):  # also refuses NaN
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    convert.__name__ = noun  # argparse names the type in some messages
    return convert


def integer(low: int, high: int | None = None):
    """An int in low..high (high None: no upper bound)."""
    return _ranged(int, "an integer", low, high)


def number(low: float):
    """A float >= low (not NaN)."""
    return _ranged(float, "a number", low, None)
