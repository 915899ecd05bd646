"""How raw values read as categories and tokens, identically in baselines and windows.

Elasticsearch indexes a JSON number in a keyword field as its text and a boolean
as ``true``/``false``; :func:`category_of` gives the same strings locally.
"""
from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"[^\W\d_]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters only: numbers say little about vocabulary drift)."""
    return _TOKEN.findall(text.lower())


def category_of(value: Any) -> str | None:
    """A scalar as the category string Elasticsearch would index; None for non-scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return None


def is_number(value: Any) -> bool:
    """A JSON number (booleans are not numbers here)."""
    return (value.__class__ is float or value.__class__ is int) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )
