"""A dependency-free progress bar for long seeds (prints nothing when not on a terminal,
except one line at the end)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, width: int = 30) -> None:
        self.label, self.width = label, width
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = (0, 0)

    def update(self, done: int, total: int) -> None:
        self.last = (done, total)
        if not self.tty or total <= 0:
            return
        filled = int(self.width * done / total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        sys.stderr.flush()

    def close(self) -> None:
        done, total = self.last
        if total:
            end = "\n" if self.tty else ""
            sys.stderr.write(f"{end}{self.label}: {done}/{total} in {time.monotonic() - self.started:.1f}s\n")
