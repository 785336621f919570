"""The open-set protocol on synthetic embeddings: who is listed, who is searched, and that the rates are the
ones lfr's own decision code gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evaluation import metrics
from evaluation.datasets import SyntheticDataset, SyntheticGroup
from evaluation.protocol import OpenSetProtocol, ProtocolError, Role

GROUPS = [SyntheticGroup({"gender": "F", "race": "A"}), SyntheticGroup({"gender": "M", "race": "B"})]


def make_protocol(identities=150, images=(1, 2, 3), synthetic_filler=False, seed=3):
    people = SyntheticDataset(
        "ids", GROUPS, identities=identities, images_per_identity=images, passers_by=0, seed=1
    )
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=500, seed=2)
    return OpenSetProtocol(
        [Role(people.embedded(), True), Role(crowd.embedded(), False)],
        ["gender", "race"],
        [["race", "gender"]],
        synthetic_filler=synthetic_filler,
        seed=seed,
    ), people


def test_listed_people_are_searched_with_their_other_images_and_nobody_listed_is_a_non_mated_probe():
    protocol, people = make_protocol()
    run = protocol.run(60)
    listed = set(run.mated.mated_identity.tolist())
    assert run.mated_identities + run.real_filler == 60
    assert listed.isdisjoint(set(run.nonmated.cluster.tolist()))
    # every non-enrolled image of each searched person is a mated search; enrolment used one each
    counts = dict.fromkeys(listed, 0)
    for sample in people.samples():
        key = f"ids:{sample.identity}"
        if key in counts:
            counts[key] += 1
    assert len(run.mated) == sum(counts.values()) - len(listed)
    # non-mated: all 500 passers-by plus every image of the identities not on the list
    assert (run.nonmated.source == "crowd").sum() == 500
    assert "F" in set(run.nonmated.attributes["gender"].tolist())
    assert set(run.nonmated.attributes["race×gender"].tolist()) <= {"A×F", "B×M"}


def test_watchlists_are_nested_so_sizes_compare():
    protocol, _ = make_protocol()
    small, large = protocol.run(30), protocol.run(90)
    assert set(small.mated.mated_identity.tolist()) <= set(large.mated.mated_identity.tolist())
    assert len(large.nonmated) < len(small.nonmated)


def test_rates_equal_lfr_decisions():
    protocol, _ = make_protocol()
    run = protocol.run(80)
    ranks, scores = run.mated.mated_ranks_and_scores()
    top = run.nonmated.top_scores
    for threshold in (0.2, 0.35, 0.5):
        assert metrics.fpir(top, threshold) == pytest.approx(run.nonmated.alerts(threshold).mean())
        alerted = run.mated.alerted_subjects(threshold)
        hits = np.array([a == w for a, w in zip(alerted, run.mated.mated_identity.tolist(), strict=True)])
        assert metrics.tpir(ranks, scores, threshold) == pytest.approx(hits.mean())


def test_a_watchlist_larger_than_the_data_needs_synthetic_filler_and_says_so():
    protocol, _ = make_protocol(identities=40)
    with pytest.raises(ProtocolError, match="more identities than the data holds"):
        protocol.run(100)
    protocol, _ = make_protocol(identities=40, synthetic_filler=True)
    run = protocol.run(100)
    assert run.synthetic_filler == 100 - 40
    assert run.enrolled_images == 100


def test_datasets_of_different_models_are_refused():
    a = SyntheticDataset("a", GROUPS, identities=10, passers_by=0, model_id="m1").embedded()
    b = SyntheticDataset("b", GROUPS, identities=0, passers_by=10, model_id="m2").embedded()
    with pytest.raises(ProtocolError, match="one model"):
        OpenSetProtocol([Role(a, True), Role(b, False)], ["gender"])


def test_searches_per_identity_can_be_capped():
    people = SyntheticDataset("ids", GROUPS, identities=50, images_per_identity=8, passers_by=0, seed=1)
    protocol = OpenSetProtocol([Role(people.embedded(), True)], ["gender"], max_searches_per_identity=3)
    run = protocol.run(20)
    assert len(run.mated) == 20 * 3
    assert len(run.nonmated) == 30 * 3


def test_a_lost_image_moves_only_its_own_person_so_two_gates_compare_paired():
    people = SyntheticDataset("ids", GROUPS, identities=150, images_per_identity=(2, 3), passers_by=0, seed=1)
    full = people.embedded()
    rows_of: dict[str, list[int]] = {}
    for row, sample in enumerate(full.samples):
        rows_of.setdefault(f"ids:{sample.identity}", []).append(row)

    def mated_scores(embedded):
        run = OpenSetProtocol([Role(embedded, True)], ["gender"], seed=3).run(60)
        _, scores = run.mated.mated_ranks_and_scores()
        found: dict[str, list[float]] = {}
        for person, score in zip(run.mated.mated_identity.tolist(), scores.tolist(), strict=True):
            found.setdefault(person, []).append(score)
        return {person: sorted(values) for person, values in found.items()}

    before = mated_scores(full)
    # a stricter gate rejects one image of a listed person with two: they can no longer be searched for
    victim = next(p for p in before if len(rows_of[p]) == 2)
    acquired = full.acquired.copy()
    acquired[rows_of[victim][1]] = False
    after = mated_scores(dataclasses.replace(full, acquired=acquired))
    assert victim not in after
    assert len(set(after) - set(before)) == 1  # the next person in the seeded order takes the place
    # everyone else keeps their enrolled image and their searches: the same mated scores (up to float
    # rounding: FAISS sums in another order when the batch shape changes)
    others = [p for p in before if p != victim]
    assert all(len(before[p]) == len(after[p]) for p in others)
    np.testing.assert_allclose([s for p in others for s in before[p]], [s for p in others for s in after[p]],
                               rtol=1e-5)  # fmt: skip
