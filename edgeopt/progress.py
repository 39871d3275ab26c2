"""Progress on long steps: one line per step with its time, and a spinner while it runs (on a terminal)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class Progress:
    """Prints step progress to stderr; silent when `enabled` is False."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True, highlight=False)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """Show `text` while the block runs, then the elapsed time."""
        if not self.enabled:
            yield
            return
        start = time.perf_counter()
        with self.console.status(text, spinner="dots"):
            yield
        self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - start:.1f} s)[/dim]")

    def info(self, text: str) -> None:
        """A one-off line (e.g. a cache hit or a warning)."""
        if self.enabled:
            self.console.print(text)

    def warn(self, text: str) -> None:
        """A warning line, shown even in a quiet run's log."""
        if self.enabled:
            self.console.print(f"[yellow]warning:[/yellow] {text}")
