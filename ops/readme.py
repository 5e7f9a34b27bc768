"""Regenerate the README's configuration table from engine/settings.py:
`python -m ops.readme` (a test fails when the README is out of date)."""

from __future__ import annotations

import pathlib
import re

from engine.settings import Settings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- settings-table[^>]*-->\n).*?(<!-- /settings-table -->)", re.S)


def settings_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | `{default}` | {help_text} |" for name, default, help_text in Settings().describe()]
    return "\n".join(rows) + "\n"


def main() -> None:
    text = README.read_text()
    README.write_text(_BLOCK.sub(lambda m: m.group(1) + settings_table() + m.group(2), text))


if __name__ == "__main__":
    main()
