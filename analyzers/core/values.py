"""How raw values read as categories and tokens, identically in baselines and windows.

Elasticsearch indexes a JSON number in a keyword field as its text and a boolean
as ``true``/``false``; :func:`category_of` gives the same strings locally.
"""
from __future__ import annotations

import string
from typing import Any

# ASCII punctuation and digits separate words (numbers say little about vocabulary drift).
# str.translate + split is three times faster than a regular expression on this hot path.
_SEPARATORS = str.maketrans({ch: " " for ch in string.punctuation + string.digits})


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of one text."""
    return text.lower().translate(_SEPARATORS).split()


def tokenize_all(texts: list[str]) -> list[str]:
    """The tokens of many texts at once (the same tokens as :func:`tokenize` on each)."""
    return " ".join(texts).lower().translate(_SEPARATORS).split()


def category_of(value: Any) -> str | None:
    """A scalar as the category string Elasticsearch would index; None for non-scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return None


def is_measured(value: Any) -> bool:
    """A JSON number that is not NaN (an output or outcome that can enter a metric)."""
    return is_number(value) and value == value


def is_number(value: Any) -> bool:
    """A JSON number (booleans are not numbers here)."""
    return (value.__class__ is float or value.__class__ is int) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )


def is_vector_of(value: Any, dim: int) -> bool:
    """An embedding of length ``dim``: a list (or tuple, or 1-d array) of ``dim`` finite numbers.

    >>> is_vector_of([0.5, 1, -2.0], 3), is_vector_of([0.5, True, 2.0], 3), is_vector_of([0.5, 1.0], 3)
    (True, False, False)
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    return (isinstance(value, (list, tuple)) and len(value) == dim
            and all(is_number(x) and x - x == 0 for x in value))  # x - x: NaN and infinities are not 0
