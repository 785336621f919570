"""The evaluation searches through the configured index and measures what it loses against exact search."""

from __future__ import annotations

import numpy as np

from evaluation.datasets import SyntheticDataset, SyntheticGroup
from evaluation.index_agreement import agreement, best_of
from evaluation.protocol import OpenSetProtocol, Role
from lfr.adapters.index_spec import IndexSpec

GROUPS = [SyntheticGroup({"gender": "F", "race": "A"}), SyntheticGroup({"gender": "M", "race": "B"})]


def protocol(index: IndexSpec | None) -> OpenSetProtocol:
    people = SyntheticDataset("ids", GROUPS, identities=300, images_per_identity=(2, 3), passers_by=0, seed=1)
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=400, seed=2)
    return OpenSetProtocol(
        [Role(people.embedded(), True), Role(crowd.embedded(), False)], ["gender"], seed=3, index=index
    )


def test_exact_search_has_nothing_to_compare():
    run = protocol(None).run(200)
    assert run.index == "flat"
    assert run.exact_best is None
    assert agreement(run, 0.5) is None


def test_an_approximate_index_is_compared_with_exact_search_on_the_same_searches():
    exact = protocol(None).run(200)
    coarse = protocol(IndexSpec("IVF4,Flat", {"nprobe": 1})).run(200)
    assert coarse.index == "IVF4,Flat,nprobe=1"
    # exact_best is what the exact run itself found, search for search
    subjects, scores = best_of(exact)
    assert coarse.exact_best is not None
    assert (coarse.exact_best[0] == subjects).all()
    np.testing.assert_allclose(coarse.exact_best[1], scores, atol=1e-5)
    threshold = float(np.quantile(scores[np.isfinite(scores)], 0.8))
    found = agreement(coarse, threshold)
    assert found is not None
    approx_subjects, approx_scores = best_of(coarse)
    assert found.recall_at_1 == np.mean(approx_subjects == subjects) < 1.0  # 1 of 4 lists: it loses some
    would = scores >= threshold
    kept = would & (approx_subjects == subjects) & (approx_scores >= threshold)
    assert found.exact_alerts == would.sum() > 0
    assert found.alerts_kept == kept.sum() / would.sum()
