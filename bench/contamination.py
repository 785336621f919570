"""Planted contamination: move a known fraction of named people's images into the passer-by set and check
that the ground-truth audit finds them.

    nice -n 10 python -m bench.contamination evaluation/configs/dev.yaml [--fraction 0.05] [--seed 1]

With a real config the embeddings come from its cache (run `lfr eval run` first). The planted images keep
their vectors; they lose their name and join a passers-by dataset `planted`, so every one whose person is on
the watchlist is a true mate counted as a non-mated search. Recall: of the planted probes whose pair with
their own person scores at or above the recommended (operating) threshold, the share the audit lists as a
pair with that person. Prints a table; not a timed test.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.config import EvalConfig
from evaluation.datasets import EmbeddedSet, Sample
from evaluation.protocol import OpenSetProtocol, Role

PLANTED = "planted"


def plant_mates(
    identities: EmbeddedSet, fraction: float, seed: int, min_images: int = 3
) -> tuple[EmbeddedSet, EmbeddedSet, dict[tuple[str, str], str]]:
    """(identities without the planted images, the planted passers-by, planted probe -> true identity key).

    One image each of a seeded `fraction` of the people with at least `min_images` acquired images is moved,
    so each keeps enough images to stay listed and searched for."""
    rows_of: dict[str, list[int]] = {}
    for i, s in enumerate(identities.samples):
        if s.identity is not None and identities.acquired[i]:
            rows_of.setdefault(s.identity, []).append(i)
    eligible = sorted(p for p, rows in rows_of.items() if len(rows) >= min_images)
    rank = sorted(eligible, key=lambda p: hashlib.sha256(f"{seed}:plant:{p}".encode()).digest())
    chosen = rank[: round(fraction * len(eligible))]
    moved = sorted(rows_of[p][-1] for p in chosen)
    keep = np.ones(len(identities.samples), dtype=bool)
    keep[moved] = False
    kept_rows = np.flatnonzero(keep)

    def pick(embedded: EmbeddedSet, rows: np.ndarray, name: str, samples: tuple[Sample, ...]) -> EmbeddedSet:
        return dataclasses.replace(
            embedded,
            dataset=name,
            fingerprint=f"{embedded.fingerprint}:{name}:{fraction}:{seed}",
            samples=samples,
            vectors=embedded.vectors[rows],
            acquired=embedded.acquired[rows],
            failure_reasons=tuple(embedded.failure_reasons[i] for i in rows),
            traits=tuple(embedded.traits[i] for i in rows) if embedded.traits else (),
        )

    remaining = pick(
        identities, kept_rows, identities.dataset, tuple(identities.samples[i] for i in kept_rows)
    )
    planted_rows = np.array(moved, dtype=np.int64)
    planted_samples = tuple(
        Sample(identities.samples[i].key, None, identities.samples[i].attributes) for i in moved
    )
    planted = pick(identities, planted_rows, PLANTED, planted_samples)
    truth = {
        (PLANTED, identities.samples[i].key): f"{identities.dataset}:{identities.samples[i].identity}"
        for i in moved
    }
    return remaining, planted, truth


@dataclass(frozen=True, slots=True)
class Recall:
    size: int
    planted_listed: int  # planted probes whose person is on this watchlist
    above: int  # ... whose pair with their own person scores at or above the threshold
    found: int  # ... of those, listed by the audit as a pair with that person

    @property
    def recall(self) -> float:
        return self.found / self.above if self.above else float("nan")


def planted_recall(
    document: dict[str, Any],
    truth: dict[tuple[str, str], str],
    embedded: list[EmbeddedSet],
    config: EvalConfig,
    threshold: float | None = None,
) -> list[Recall]:
    """Ground truth computed apart from the audit: the same watchlists drawn again (same seed), and each
    planted probe scored against its own person's enrolled images directly; then which of those pairs at
    or above the operating threshold the report's audit lists."""
    if threshold is None:
        threshold = document["recommendation"]["operating_threshold"]
    roles = [
        Role(e, e.dataset in {d.name for d in config.datasets if d.role == "identities"}) for e in embedded
    ]
    protocol = OpenSetProtocol(
        roles,
        attributes=config.attributes,
        intersections=config.intersections,
        enrolment_images=config.protocol.enrolment_images,
        max_mated_identities=config.protocol.max_mated_identities,
        synthetic_filler=config.protocol.synthetic_filler,
        top_k=config.protocol.top_k,
        seed=config.seed,
        max_searches_per_identity=config.protocol.max_searches_per_identity,
    )
    vector = {
        (e.dataset, s.key): e.vectors[i] for e in embedded for i, s in enumerate(e.samples) if e.acquired[i]
    }
    results = []
    for w in document["audit"]["watchlists"]:
        run = protocol.run(w["size"])
        listed = {(p["probe_dataset"], p["probe_image"], p["listed_identity"]) for p in w["pairs"]}
        searched = set(run.nonmated.probes)
        mine = [(probe, who) for probe, who in truth.items() if who in run.enrolled and probe in searched]
        above = [
            (probe, who)
            for probe, who in mine
            if threshold is not None
            and max(float(vector[probe] @ vector[ref]) for ref in run.enrolled[who]) >= threshold
        ]
        found = sum(1 for probe, who in above if (*probe, who) in listed)
        results.append(Recall(w["size"], len(mine), len(above), found))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", type=Path, default=Path("var/eval-reports/contamination"))
    args = parser.parse_args()
    from evaluation.config import load_eval_config
    from evaluation.pipeline import EmbeddedDataset, embed_datasets
    from evaluation.progress import Progress
    from evaluation.runner import run_evaluation

    config = load_eval_config(args.config)
    config = config.model_copy(update={"output_dir": str(args.output_dir.resolve()), "scaling": None})
    started = time.monotonic()
    datasets = embed_datasets(config, Progress())
    source = next(d for d in datasets if d.spec.role == "identities")
    remaining, planted, truth = plant_mates(source.embedded, args.fraction, args.seed)
    planted_spec = source.spec.model_copy(update={"name": PLANTED, "role": "passers_by"})
    contaminated = [EmbeddedDataset(d.spec, remaining) if d is source else d for d in datasets]
    contaminated.append(EmbeddedDataset(planted_spec, planted))
    config = config.model_copy(update={"datasets": [*config.datasets, planted_spec]})
    result = run_evaluation(config, args.config.read_text(), contaminated, Progress())
    document = json.loads(result.paths["json"].read_text())
    recommendation = document["recommendation"]
    print(
        f"planted {len(truth)} images ({args.fraction:.0%} of the people with 3+ images), seed {args.seed}; "
        f"operating threshold {recommendation['operating_threshold']} (differential-free "
        f"{recommendation['differential_free_threshold']}); {time.monotonic() - started:.0f} s"
    )
    print("| N | T | planted probes of listed people | their pair >= T | listed by the audit | recall |")
    print("|---|---|---|---|---|---|")
    thresholds = {recommendation["operating_threshold"], recommendation["differential_free_threshold"], 0.5}
    for t in sorted(x for x in thresholds if x is not None):
        for r in planted_recall(document, truth, [d.embedded for d in contaminated], config, t):
            print(f"| {r.size:,} | {t:.2f} | {r.planted_listed} | {r.above} | {r.found} | {r.recall:.1%} |")


if __name__ == "__main__":
    main()
