"""A dependency-free progress bar for long work (generation, corpus building, training, eval).

Writes to stderr, redraws in place on a terminal and prints a line every ~10 % otherwise
(logs, CI). ``disable=True`` turns it off.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """``with Progress(total, "desc") as bar: ... bar.update(1, loss=0.12)``; ``initial``: done
    before this run (a resumed training run), counted in the bar but not in the rate."""

    def __init__(self, total: int | None, desc: str = "", *, disable: bool = False, stream=None,
                 initial: int = 0):  # fmt: skip
        self.total = total
        self.desc = desc
        self.disable = disable
        self.stream = stream or sys.stderr
        self.initial = self.count = initial
        self.postfix: dict[str, object] = {}
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_decile = -1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **postfix: object) -> None:
        self.count += n
        self.postfix.update(postfix)
        self._draw()

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = (self.count - self.initial) / elapsed if elapsed > 0 else 0.0
        post = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items()
        )
        if self.total:
            frac = min(self.count / self.total, 1.0)
            bar = "#" * int(frac * 24)
            eta = (self.total - self.count) / rate if rate > 0 else 0.0
            return (
                f"{self.desc} [{bar:<24}] {self.count}/{self.total} "
                f"{rate:.2f}/s eta {eta:.0f}s {post}".rstrip()
            )
        return f"{self.desc} {self.count} {rate:.2f}/s {post}".rstrip()

    def _draw(self, final: bool = False) -> None:
        if self.disable:
            return
        now = time.perf_counter()
        if self._tty:
            if final or now - self._last_draw > 0.1:
                self.stream.write("\r" + self._line() + ("\n" if final else ""))
                self.stream.flush()
                self._last_draw = now
            return
        decile = int(10 * self.count / self.total) if self.total else -1
        if final or (self.total and decile > self._last_decile):
            self._last_decile = decile
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if not self.disable and (self._tty or self.count != self.total or not self.total):
            self._draw(final=True)
        self.disable = True


def progress(
    items: Iterable[T], desc: str = "", total: int | None = None, disable: bool = False
) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar."""
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with Progress(total, desc, disable=disable) as bar:
        for item in items:
            yield item
            bar.update(1)
