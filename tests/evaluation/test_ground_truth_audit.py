"""The ground-truth audit on seeded synthetic embeddings: planted mates among the passers-by are listed for
review, reviewed exclusions change the figures, unreviewed suspects are announced at the top, and false
positives are traced to the listed identities and probe attributes that draw them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.contamination import PLANTED, plant_mates, planted_recall
from evaluation.audit import (
    ExclusionsError,
    Review,
    apply_reviews,
    attribute_concentration,
    load_reviews,
    near_duplicates,
)
from evaluation.config import load_eval_config
from evaluation.datasets import SyntheticDataset, SyntheticGroup
from evaluation.pipeline import EmbeddedDataset
from evaluation.protocol import OpenSetProtocol, Role
from evaluation.runner import run_evaluation

GROUPS = [SyntheticGroup({"gender": "F"}), SyntheticGroup({"gender": "M"})]
HEADER = "probe_dataset,probe_image,listed_identity,verdict,reviewer,reason\n"


def write_config(folder: Path, **overrides: object) -> Path:
    config = {
        "name": "audit-test",
        "seed": 5,
        "output_dir": str(folder / "out"),
        "datasets": [
            {
                "name": "ids",
                "role": "identities",
                "kind": "synthetic",
                "synthetic": {
                    "identities": 300,
                    "images_per_identity": 4,
                    "passers_by": 0,
                    "groups": [{"attributes": {"gender": "F"}}, {"attributes": {"gender": "M"}}],
                },
            },
            {
                "name": "crowd",
                "role": "passers_by",
                "kind": "synthetic",
                "synthetic": {
                    "passers_by": 3000,
                    "groups": [{"attributes": {"gender": "F"}}, {"attributes": {"gender": "M"}}],
                },
            },
        ],
        "protocol": {"watchlist_sizes": [200]},
        "attributes": ["gender"],
        "intersections": [],
        "thresholds": {"start": 0.3, "stop": 0.9, "step": 0.05},
        "statistics": {"bootstrap_samples": 0, "fpir_ceiling_one_in": 500},
    } | overrides
    path = folder / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def contaminated_run(tmp_path: Path, fraction: float = 0.1, exclusions: Path | None = None):
    """The synthetic config's datasets with a seeded fraction of named people's images moved to the crowd."""
    path = write_config(tmp_path)
    config = load_eval_config(path)
    if exclusions is not None:
        config = config.model_copy(
            update={"audit": config.audit.model_copy(update={"exclusions": str(exclusions)})}
        )
    from evaluation.config import build_synthetic_dataset

    ids_spec, crowd_spec = config.datasets
    ids = build_synthetic_dataset(config, ids_spec).embedded()
    crowd = build_synthetic_dataset(config, crowd_spec).embedded()
    remaining, planted, truth = plant_mates(ids, fraction, seed=2)
    planted_spec = crowd_spec.model_copy(update={"name": PLANTED})
    config = config.model_copy(update={"datasets": [*config.datasets, planted_spec]})
    datasets = [
        EmbeddedDataset(ids_spec, remaining),
        EmbeddedDataset(crowd_spec, crowd),
        EmbeddedDataset(planted_spec, planted),
    ]
    result = run_evaluation(config, path.read_text(), datasets)
    document = json.loads(result.paths["json"].read_text())
    return config, datasets, truth, result, document


def test_planted_mates_are_listed_for_review_with_their_own_person(tmp_path):
    config, datasets, truth, result, document = contaminated_run(tmp_path)
    embedded = [d.embedded for d in datasets]
    (at_recommended,) = planted_recall(document, truth, embedded, config)
    assert at_recommended.recall >= 0.95
    (at_half,) = planted_recall(document, truth, embedded, config, threshold=0.5)
    assert at_half.planted_listed > 15  # the planting put real mates among the non-mated searches
    assert at_half.above > 10
    assert at_half.recall >= 0.95
    # the contamination pushed the recommendation up: without the suspects it would be lower
    recommendation = document["recommendation"]
    without = document["audit"]["watchlists"][0]["variants"]["without_suspects"]
    assert without["recommended_threshold"] < recommendation["recommended_threshold"]
    audit = document["audit"]["watchlists"][0]
    # the planted images score like mates: many non-mated searches above the median mated score
    assert audit["nonmated_above_median_mated"] >= 5
    top = audit["pairs"][0]
    assert (top["probe_dataset"], top["probe_image"]) in truth
    assert top["listed_image"][0] == "ids"  # the enrolled image a reviewer compares it with
    # dropping the suspects removes most false positives at the operating threshold
    variants = audit["variants"]
    assert (
        variants["without_suspects"]["at_threshold"]["fpir"]["count"]
        < variants["reviewed"]["at_threshold"]["fpir"]["count"]
    )
    html = result.paths["html"].read_text()
    assert html.index('id="unreviewed-suspects"') < html.index("<h1>")  # said at the top
    assert "Ground-truth audit" in html
    assert audit["identity_concentration"]["false_positives"] > 0
    # planted probes come from the "planted" source: the attribute table shows it holding the false positives
    sources = {x["value"]: x for x in audit["attribute_concentration"] if x["attribute"] == "dataset"}
    assert sources[PLANTED]["share_of_false_positives"] > 5 * sources[PLANTED]["share_of_searches"]


def test_reviewed_exclusions_feed_the_next_run_and_clear_the_warning(tmp_path):
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    _, _, truth, _, document = contaminated_run(first_dir)
    audit = document["audit"]["watchlists"][0]
    threshold = document["recommendation"]["operating_threshold"]
    suspects = audit["pairs"][:20]  # every suspect and the next-highest pairs
    assert suspects
    lines = [HEADER]
    for p in suspects:
        same = truth.get((p["probe_dataset"], p["probe_image"])) == p["listed_identity"]
        verdict = "same" if same else "different"
        pair = f"{p['probe_dataset']},{p['probe_image']},{p['listed_identity']}"
        lines.append(f'{pair},{verdict},tester,"seen, by eye é"\n')
    exclusions = tmp_path / "reviewed.csv"
    exclusions.write_text("".join(lines), encoding="utf-8")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    _, _, _, result, again = contaminated_run(second_dir, exclusions=exclusions)
    reviewed = again["audit"]["watchlists"][0]
    same_count = sum(1 for line in lines[1:] if ",same," in line)
    assert reviewed["excluded_by_review"] == same_count
    assert (
        reviewed["variants"]["as_drawn"]["nonmated_searches"]
        - reviewed["variants"]["reviewed"]["nonmated_searches"]
        == same_count
    )
    as_drawn = reviewed["variants"]["as_drawn"]["at_threshold"]["fpir"]["count"]
    after = reviewed["variants"]["reviewed"]["at_threshold"]["fpir"]["count"]
    assert after < as_drawn
    # the report's own figures are the reviewed ones
    headline = next(
        r
        for r in again["watchlists"][0]["thresholds"]
        if r["threshold"] == again["recommendation"]["operating_threshold"]
    )
    assert headline["fpir"]["searches"] == reviewed["variants"]["reviewed"]["nonmated_searches"]
    assert again["audit"]["reviews_same"] == same_count
    if again["recommendation"]["operating_threshold"] == threshold:
        assert again["audit"]["unreviewed_above_operating"] == 0
        assert 'id="unreviewed-suspects"' not in result.paths["html"].read_text()
    # a reviewed pair shows its verdict, reviewer and reason
    shown = [p for p in reviewed["pairs"] if p["review"]]
    assert shown
    assert shown[0]["review"]["reviewer"] == "tester"
    assert "é" in shown[0]["review"]["reason"]


def test_a_review_only_excludes_a_probe_where_its_person_is_listed():
    people = SyntheticDataset("ids", GROUPS, identities=120, images_per_identity=3, passers_by=0, seed=1)
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=300, seed=2)
    protocol = OpenSetProtocol([Role(people.embedded(), True), Role(crowd.embedded(), False)], ["gender"])
    small, large = protocol.run(20), protocol.run(100)
    only_large = sorted(set(large.enrolled) - set(small.enrolled))[0]
    probe = small.nonmated.probes[-1]
    assert probe[0] == "crowd"
    review = Review(*probe, only_large, "same", "r", "why")
    known_images = {probe}
    known_identities = set(large.enrolled)
    assert apply_reviews(large, [review], known_images, known_identities).excluded == 1
    kept = apply_reviews(small, [review], known_images, known_identities)
    assert kept.excluded == 0  # that person is not on the small list: the probe is a genuine non-mated search
    assert len(kept.run.nonmated) == len(small.nonmated)


def test_an_exclusions_file_naming_unknown_pairs_is_reported_not_applied(tmp_path):
    exclusions = tmp_path / "reviewed.csv"
    exclusions.write_text(HEADER + "crowd,no/such/image.jpg,ids:nobody,same,tester,unknown pair\n")
    path = write_config(tmp_path, audit={"exclusions": str(exclusions)})
    config = load_eval_config(path)
    document = json.loads(run_evaluation(config, path.read_text()).paths["json"].read_text())
    assert document["audit"]["unknown_reviews"] == [
        {"probe_dataset": "crowd", "probe_image": "no/such/image.jpg", "listed_identity": "ids:nobody"}
    ]
    assert document["audit"]["watchlists"][0]["excluded_by_review"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("probe_dataset,probe_image,verdict,reviewer,reason\n", "lacks column"),
        (HEADER + "crowd,a.jpg,ids:x,same,,because\n", "reviewer must not be blank"),
        (HEADER + "crowd,a.jpg,ids:x,maybe,me,because\n", "verdict must be"),
        (HEADER + "crowd,a.jpg,ids:x,same,me,because\ncrowd,a.jpg,ids:x,different,you,no\n", "both same"),
    ],
)
def test_a_malformed_exclusions_file_is_refused_clearly(tmp_path, text, message):
    path = tmp_path / "reviewed.csv"
    path.write_text(text)
    with pytest.raises(ExclusionsError, match=message):
        load_reviews(path)


def test_exclusion_reasons_may_hold_commas_quotes_and_unicode(tmp_path):
    path = tmp_path / "reviewed.csv"
    path.write_text(HEADER + 'crowd,"dir, with comma/ä.jpg",ids:Zoë,SAME,lfr-dev,"same mole, same ""ear"""\n')
    (review,) = load_reviews(path)
    assert review.probe_image == "dir, with comma/ä.jpg"
    assert review.listed_identity == "ids:Zoë"
    assert review.verdict == "same"
    assert review.reason == 'same mole, same "ear"'


def test_near_duplicates_across_datasets_and_across_names_are_found():
    people = SyntheticDataset(
        "ids", GROUPS, identities=50, images_per_identity=2, passers_by=0, seed=1
    ).embedded()
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=200, seed=2).embedded()
    vectors = crowd.vectors.copy()
    vectors[7] = people.vectors[10]  # the same photograph in both collections
    crowd = dataclasses.replace(crowd, vectors=vectors)
    samples = list(people.samples)
    renamed = dataclasses.replace(samples[31], identity="someone-else")  # one person under two names
    samples[31] = renamed
    people_vectors = people.vectors.copy()
    people_vectors[31] = people.vectors[20]
    people = dataclasses.replace(people, samples=tuple(samples), vectors=people_vectors)
    found, total = near_duplicates([people, crowd], min_score=0.95, limit=10)
    pairs = {(d.first, d.second) for d in found}
    assert (("ids", people.samples[10].key), ("crowd", crowd.samples[7].key)) in pairs
    assert (("ids", people.samples[20].key), ("ids", people.samples[31].key)) in pairs
    assert total == len(found) == 2


def test_false_positives_are_traced_to_image_traits_beyond_demographics():
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=400, seed=2).embedded()
    people = SyntheticDataset(
        "ids", GROUPS, identities=60, images_per_identity=2, passers_by=0, seed=1
    ).embedded()
    protocol = OpenSetProtocol([Role(people, True), Role(crowd, False)], ["gender"])
    run = protocol.run(60)
    threshold = float(np.quantile(run.nonmated.top_scores, 0.9))
    alerted = run.nonmated.top_scores >= threshold
    # greyscale exactly where a search alerts: the trait must then hold every false positive
    traits = {
        probe: {"colour": "greyscale" if a else "colour"}
        for probe, a in zip(run.nonmated.probes, alerted, strict=True)
    }
    shares = {(x.attribute, x.value): x for x in attribute_concentration(run.nonmated, threshold, traits)}
    assert shares[("colour", "greyscale")].false_positives == int(alerted.sum())
    assert shares[("colour", "colour")].false_positives == 0
    assert shares[("gender", "F")].searches + shares[("gender", "M")].searches == len(run.nonmated)


def test_comment_lines_in_an_exclusions_file_record_what_was_left_undecided(tmp_path):
    path = tmp_path / "reviewed.csv"
    path.write_text("# reviewed by eye; #3 left undecided\n" + HEADER + "crowd,a.jpg,ids:x,same,me,because\n")
    (review,) = load_reviews(path)
    assert review.probe_image == "a.jpg"


def test_the_shipped_reviewed_exclusions_file_is_well_formed():
    shipped = Path(__file__).resolve().parents[2] / "evaluation" / "reviewed-exclusions.csv"
    reviews = load_reviews(shipped)
    assert len(reviews) >= 60
    assert {r.reviewer for r in reviews} == {"lfr-dev"}
    assert all(len(r.reason) > 20 for r in reviews)
