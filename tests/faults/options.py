"""Knobs of the fault suite, and which features have landed.

Durations: short by default (CI); FAULTS_LONG=1 for the long run (10 s faults, more buyers);
FAULTS_SECONDS / FAULTS_BUYERS override either.
"""

from __future__ import annotations

import importlib.util
import os

LONG = os.environ.get("FAULTS_LONG") == "1"
FAULT_SECONDS = float(os.environ.get("FAULTS_SECONDS", "10" if LONG else "3"))
BUYERS = int(os.environ.get("FAULTS_BUYERS", "8" if LONG else "4"))
RECOVERY_LIMIT = 15.0     # seconds a healed dependency may take to be usable again
REQUEST_LIMIT = 7.5       # an answer slower than this (the stack's REQUEST_TIMEOUT 6.5 + margin) is a hang
EXPIRY_SECONDS = 3        # PAYMENT_EXPIRY_SECONDS of the fault stack: expiry jobs run during the scenarios
RESEND_SECONDS = 3        # OUTBOX_RESEND_SECONDS of the fault stack: a job the broker lost is sent again after it
# A flash sale: many buyers at once for fewer units than buyers, plus bystanders reading the
# catalogue and writing their carts (tests/faults/test_flash_sale.py).
FLASH_BUYERS = int(os.environ.get("FAULTS_FLASH_BUYERS", "96" if LONG else "64"))
FLASH_BROWSERS = int(os.environ.get("FAULTS_FLASH_BROWSERS", "16"))
FLASH_STOCK = FLASH_BUYERS // 2


def route_exists(method: str, path: str) -> bool:
    from web.app import route_tables

    return any(s.method == method and s.full_path == path for t in route_tables() for s in t.specs)


def checkout_landed() -> bool:
    return route_exists("POST", "/api/v1/cart/checkout")


def workers_landed() -> bool:
    return importlib.util.find_spec("workers.main") is not None
