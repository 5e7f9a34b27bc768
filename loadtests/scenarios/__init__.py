"""Locust scenarios, one file each: browse, shopper, flash_sale, rate_limits, integration.

Run them with `python -m loadtests.run <scenario>` (see loadtests/README.md), which starts the
engine, arranges the data, runs Locust headless, checks budgets and database invariants.
"""
