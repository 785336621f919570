"""Progress with an ETA on stderr (tqdm): a first run embeds thousands of images and must not sit silent."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """Named phases, each a bar with count, rate and time remaining; `enabled=False` prints nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @contextmanager
    def phase(self, description: str, total: int, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
        """Yields `update(done, total)`, the callback shape of `embed_manifest(progress=...)`."""
        from tqdm import tqdm

        bar: Any = tqdm(
            total=total, desc=description, unit=unit, disable=not self.enabled, file=sys.stderr, leave=True
        )

        def update(done: int, new_total: int) -> None:
            if new_total != bar.total:
                bar.total = new_total
            bar.update(max(0, done - bar.n))

        try:
            yield update
        finally:
            bar.close()
