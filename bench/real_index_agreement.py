"""What each approximate index loses against exact search on real embeddings, at fixed thresholds.

    python -m bench.real_index_agreement CONFIG.yaml OUT.json [--sizes 100,1000,2800,10000]

CONFIG is an evaluation config (e.g. a copy of evaluation/configs/dev.yaml with an absolute cache_dir): the
watchlists are drawn by the harness's own protocol (evaluation.protocol.OpenSetProtocol, as `lfr eval run`
draws them, synthetic filler allowed and labelled) and compared by evaluation.index_agreement. `lfr eval
run` with `protocol.index` writes the same recall@1 to index_agreement.json, but alerts kept only at the
threshold it recommends, and on the development data it recommends none (13,746 non-mated searches cannot
bound FPIR below 1 in 6,000); this reports alerts kept at the thresholds given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

KINDS: list[tuple[str, dict[str, int]]] = [
    ("sq8", {}),
    ("ivf", {"nprobe": 32}),
    ("ivf", {"nprobe": 128}),
    ("hnsw", {"efSearch": 128}),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", default="100,1000,2800,10000")
    parser.add_argument("--thresholds", default="0.50,0.58")
    args = parser.parse_args()

    from evaluation.config import load_eval_config
    from evaluation.index_agreement import agreement
    from evaluation.pipeline import embed_datasets
    from evaluation.protocol import OpenSetProtocol, Role
    from lfr.adapters.index_spec import IndexSpec

    config = load_eval_config(args.config)
    datasets = embed_datasets(config)
    roles = [Role(d.embedded, d.spec.role == "identities") for d in datasets]
    p = config.protocol
    rows = []
    for kind, params in KINDS:
        protocol = OpenSetProtocol(
            roles,
            attributes=config.attributes,
            intersections=config.intersections,
            enrolment_images=p.enrolment_images,
            max_mated_identities=p.max_mated_identities,
            synthetic_filler=True,
            top_k=p.top_k,
            seed=config.seed,
            max_searches_per_identity=p.max_searches_per_identity,
            index=IndexSpec(kind, params),
        )
        for size in (int(s) for s in args.sizes.split(",")):
            run = protocol.run(size)
            for threshold in (float(t) for t in args.thresholds.split(",")):
                found = agreement(run, threshold)
                if found is None:
                    continue
                row = {
                    **dataclasses.asdict(found),
                    "synthetic_filler": run.synthetic_filler,
                    "real_filler": run.real_filler,
                    "mated_identities": run.mated_identities,
                    "mated_searches": len(run.mated.candidates),
                    "nonmated_searches": len(run.nonmated.candidates),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
