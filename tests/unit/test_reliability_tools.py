"""The nemesis schedule is a function of its seed; the reliability report keeps rows it did not re-run."""

from __future__ import annotations

from ops.reliability import kept_rows, render
from tests.faults.nemesis import schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert schedule(45, 3, 14.0) == schedule(45, 3, 14.0)
    assert schedule(45, 3, 14.0) != schedule(46, 3, 14.0)


def test_faults_of_a_phase_never_overlap_and_end_inside_it():
    for seed in range(30):
        faults = schedule(seed, 2, 14.0, max_per_phase=None)
        for phase in (0, 1):
            mine = [f for f in faults if f.phase == phase]
            for a, b in zip(mine, mine[1:]):
                assert a.at + a.seconds < b.at
            assert all(f.at + f.seconds <= 13.0 for f in mine)


def test_a_cap_limits_faults_per_phase():
    assert all(sum(1 for f in schedule(s, 1, 60.0, max_per_phase=4)) <= 4 for s in range(20))


def _row(name: str, result: str = "passed", kind: str = "fault") -> dict:
    return {"name": name, "load": "l", "injected": "i", "invariants": ["1 stock"], "recovery_seconds": 1.0,
            "details": {"x": 1}, "kind": kind, "outcome": result, "reason": ""}


def test_a_partial_run_replaces_its_rows_and_keeps_the_others_in_order():
    first = render([_row("test_a"), _row("test_b"), _row("test_h", kind="hostile")], long_mode=False)
    again = render([_row("test_b", "failed"), _row("test_c")], long_mode=False, kept=kept_rows(first))
    table = [line for line in again.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["test_a", "test_b", "test_c", "test_h"]
    assert "**FAIL**" in table[1] and "PASS" in table[0]
    assert sum(1 for line in again.splitlines() if line.startswith("- `")) == 3
