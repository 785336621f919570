"""Which enrolment fusion rule: max over templates or one mean template? On the harness's own draw.

    nice -n 10 python -m bench.template_fusion evaluation/configs/dev.yaml [--size 1000] [--cache-dir DIR]

The four-way study itself (enrolment x probe, per group, with the audit's exclusions) is part of the
evaluation (`fusion_study:` in the config, evaluation/fusion_study.py). This bench keeps only the
question that study takes as settled: with E images of each listed person, is the matcher better off
searching every image (a subject's best row: `collapse_to_subjects`) or their unit mean
(lfr.domain.watchlist.mean_templates, what the matcher does)? Same draw as the study (its listed people,
single-sample mated probes and reviewed non-mated set); threshold at FPIR 0.1% of each rule's own non-mated
searches. Reads the config's embedding cache (run `lfr eval run` first); prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evaluation import metrics
from evaluation.audit import load_reviews
from evaluation.config import EvalConfig, load_eval_config
from evaluation.fusion_study import draw_passages, enrolled_index
from evaluation.pipeline import embed_datasets
from evaluation.progress import Progress
from evaluation.protocol import OpenSetProtocol, Role
from lfr.adapters.faiss_index import FaissIndex


def protocol_of(config: EvalConfig) -> OpenSetProtocol:
    datasets = embed_datasets(config, Progress())
    return OpenSetProtocol(
        [Role(d.embedded, d.spec.role == "identities") for d in datasets],
        attributes=config.attributes,
        top_k=config.protocol.top_k,
        seed=config.seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--enrolment-images", type=int, default=2)
    parser.add_argument("--probe-samples", type=int, default=2)
    parser.add_argument("--fpir", type=float, default=0.001)
    parser.add_argument("--cache-dir", type=Path, help="overrides cache_dir in the config")
    args = parser.parse_args()
    config = load_eval_config(args.config)
    if args.cache_dir is not None:
        config = config.model_copy(update={"cache_dir": str(args.cache_dir.resolve())})
    protocol = protocol_of(config)
    exclusions = config.audit.exclusions
    reviews = load_reviews(config.resolve(exclusions)) if exclusions is not None else []
    draw = draw_passages(protocol, args.size, args.enrolment_images, args.probe_samples, reviews)
    mated = [(face, p.cluster) for p in draw.mated for face in p.faces]
    nonmated = [face for p in draw.nonmated for face in p.faces]
    print(
        f"N = {args.size} ({len(draw.mated)} searched-for people); {len(mated)} single-sample mated and "
        f"{len(nonmated)} non-mated searches\n"
    )
    print("| enrolment | threshold at FPIR 0.1% | TPIR (95% Wilson) | mean mated score |")
    print("|---|---:|---:|---:|")
    e = args.enrolment_images
    every_row = [i.key for i in draw.listed for _ in i.rows[:e]]
    rows = np.concatenate([i.source.vectors[list(i.rows[:e])] for i in draw.listed]).astype(np.float32)
    for name, index in (
        ("1 image", enrolled_index(protocol, draw.listed, 1)),
        (f"{e} images, max over templates", FaissIndex(every_row, rows, protocol.index_spec)),
        (f"{e} images, mean template", enrolled_index(protocol, draw.listed, e)),
    ):
        searched = protocol.search(index, [f for f, _ in mated], [c for _, c in mated], [c for _, c in mated])
        non = protocol.search(index, nonmated, [str(n) for n in range(len(nonmated))], None)
        index.close()
        ranks, scores = searched.mated_ranks_and_scores()
        fnir, threshold = metrics.fnir_at_fpir(ranks, scores, non.top_scores, args.fpir)
        hits = metrics.mated_hits(ranks, scores, threshold)
        low, high = metrics.wilson_interval(int(hits.sum()), hits.size)
        mean = float(np.nanmean(np.where(ranks > 0, scores, np.nan)))
        print(f"| {name} | {threshold:.3f} | {1 - fnir:.1%} ({low:.1%}-{high:.1%}) | {mean:.3f} |")


if __name__ == "__main__":
    main()
