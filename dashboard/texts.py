"""The dashboard's words, ja and en, from data files (dashboard/texts/*.yaml): one file per area of pages.

A missing key is a programming error that tests catch (tests/test_dashboard_texts.py checks every key used by
a template exists in both languages); at run time it shows the key itself rather than failing a page.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

LANGS = ("ja", "en")


@functools.cache
def all_texts() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for entry in sorted(resources.files("dashboard").joinpath("texts").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        data: Any = yaml.safe_load(entry.read_text("utf-8")) or {}
        for key, value in data.items():
            if key in merged:
                raise ValueError(f"dashboard text {key!r} defined twice (second time in {entry.name})")
            merged[key] = {lang: str(value[lang]) for lang in LANGS}
    return merged


def text(key: str, lang: str) -> str:
    entry = all_texts().get(key)
    if entry is None:
        return key
    return entry.get(lang if lang in LANGS else "ja", key)
