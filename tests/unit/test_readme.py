"""The README must stay true: it opens with the two commands, and documents every setting."""

from __future__ import annotations

import pathlib

from engine.settings import FIELDS

README = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["./run engine", "./run tests"]


def test_every_setting_is_in_the_configuration_table():
    missing = [f.metadata["env"] for f in FIELDS if f"`{f.metadata['env']}`" not in README]
    assert missing == []


def test_configuration_table_is_current():
    from ops.readme import settings_table

    assert settings_table() in README, "run `python -m ops.readme`"


def test_rate_limit_table_lists_every_route():
    from ops.readme import rate_limit_table

    assert rate_limit_table() in README, "run `python -m ops.readme`"
