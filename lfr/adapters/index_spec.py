"""Which search index a matcher or an evaluation uses (`matching.index`), without importing FAISS."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from lfr.domain.errors import InvalidInput

# Short names for `matching.index`; anything else is handed to faiss.index_factory as it is.
NAMED = {"flat": "Flat", "sq8": "SQ8", "hnsw": "HNSW32"}
EXACT = frozenset({"flat", "Flat"})
DEFAULT_PARAMS = {"nprobe": 32, "efSearch": 128}
_FACTORY_TEXT = re.compile(r"^[A-Za-z0-9_,.=+\-]{1,200}$")


@dataclass(frozen=True)
class IndexSpec:
    """Which index and how to search it. `kind`: flat (exact), sq8, ivf, hnsw, or a FAISS factory string
    (e.g. "IVF1024,SQ8", "HNSW48"). `params`: FAISS search parameters by their FAISS names (nprobe,
    efSearch); defaults below. `shards`: indexes searched in parallel, one thread each."""

    kind: str = "flat"
    params: dict[str, int] = field(default_factory=dict)
    shards: int = 1

    def __post_init__(self) -> None:
        if not _FACTORY_TEXT.match(self.kind):
            raise InvalidInput(f"index {self.kind!r} is not an index name or FAISS factory string")
        if self.shards < 1:
            raise InvalidInput("index shards must be at least 1")
        unknown = set(self.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise InvalidInput(f"unknown index parameters {sorted(unknown)} (known: nprobe, efSearch)")

    @property
    def exact(self) -> bool:
        return self.kind in EXACT

    def factory_string(self, rows: int) -> str:
        if self.kind == "ivf":
            return f"IVF{ivf_lists(rows)},Flat"
        return NAMED.get(self.kind, self.kind)

    def label(self) -> str:
        """What was searched, for reports and the equity gate: the kind plus the parameters that apply."""
        text = self.kind
        applying = [f"{k}={v}" for k, v in sorted(self.search_params().items()) if self.uses(k)]
        return ",".join([text, *applying])

    def search_params(self) -> dict[str, int]:
        return {**DEFAULT_PARAMS, **self.params}

    def uses(self, param: str) -> bool:
        kind = self.kind.lower()
        return (param == "nprobe" and kind.startswith(("ivf", "imi"))) or (
            param == "efSearch" and "hnsw" in kind
        )


def ivf_lists(rows: int) -> int:
    """About 4 sqrt(N) inverted lists, with at least 39 training points each (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(max(rows, 1))), rows // 39))
