"""Kept for `dramatiq workers.entry:boot` command lines written before `workers.app` existed:
booting imports `workers.app`, which does all the work at import."""

from __future__ import annotations

import importlib


def boot() -> None:
    importlib.import_module("workers.app")
