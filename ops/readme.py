"""Regenerate the README's generated tables: `python -m ops.readme` (a test fails when the
README is out of date): the configuration table from engine/settings.py, and the rate-limit
table from the route declarations (web/routes/*) and web.ratelimit.POLICIES."""

from __future__ import annotations

import pathlib
import re

from engine.settings import Settings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- settings-table[^>]*-->\n).*?(<!-- /settings-table -->)", re.S)
_RATE_BLOCK = re.compile(r"(<!-- rate-limits-table[^>]*-->\n).*?(<!-- /rate-limits-table -->)", re.S)


def settings_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | `{default}` | {help_text} |" for name, default, help_text in Settings().describe()]
    return "\n".join(rows) + "\n"


def rate_limit_table() -> str:
    """Every route with its policy, the policy's default budget and the setting that changes it."""
    from web.app import route_tables
    from web.ratelimit import POLICIES

    defaults = Settings()

    def budget(policy: str) -> str:
        setting = POLICIES[policy].setting
        if setting is None:
            return "unlimited | -"
        return f"{getattr(defaults, setting)} | `{setting.upper()}`"

    rows = ["| Route | Policy | Per minute | Setting |", "|---|---|---|---|"]
    for spec in sorted((s for t in route_tables() for s in t.specs), key=lambda s: (s.full_path, s.method)):
        assert spec.policy is not None, f"{spec.method} {spec.full_path} declares no rate-limit policy"
        cells = [f"`{spec.method} {spec.full_path}`", f"`{spec.policy}`", budget(spec.policy)]
        rows.append("| " + " | ".join(cells) + " |")
        if spec.user_policy:
            rows.append(f"| ↳ the same, by a signed-in user | `{spec.user_policy}` | {budget(spec.user_policy)} |")
    rows += [""] + [f"- `{p.name}`: {p.covers}" for p in POLICIES.values()]
    return "\n".join(rows) + "\n"


def main() -> None:
    text = README.read_text()
    text = _BLOCK.sub(lambda m: m.group(1) + settings_table() + m.group(2), text)
    README.write_text(_RATE_BLOCK.sub(lambda m: m.group(1) + rate_limit_table() + m.group(2), text))


if __name__ == "__main__":
    main()
