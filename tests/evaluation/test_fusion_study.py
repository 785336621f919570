"""The four-way fusion study (enrolment 1 or E images x probe 1 image or an S-image track) on seeded
synthetic embeddings: one draw for all four, the matcher's own fusion rules, the reviewed exclusions,
intervals around the estimates, and fusion helping where images are noisy copies of a person."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from evaluation.analysis import StatisticsSettings
from evaluation.audit import SAME, Review
from evaluation.config import ConfigError, load_eval_config
from evaluation.datasets import SyntheticDataset, SyntheticGroup
from evaluation.fusion_study import FusionStudy, run_fusion_study, track_candidates
from evaluation.protocol import OpenSetProtocol, Role
from lfr.adapters.faiss_index import FaissIndex
from lfr.cli.main import app
from lfr.domain.matching import decide
from lfr.services.track_evidence import TrackEvidence, TrackEvidencePolicy

GROUPS = [SyntheticGroup({"gender": "F"}), SyntheticGroup({"gender": "M"})]
CONFIGS = Path(__file__).resolve().parents[2] / "evaluation" / "configs"
SETTINGS = StatisticsSettings(bootstrap_samples=200, seed=5)


def make_protocol() -> OpenSetProtocol:
    # Noisy images (genuine cosine 0.35): averaging several of one person recovers them, as fusion should.
    people = SyntheticDataset(
        "ids", GROUPS, identities=600, images_per_identity=(1, 2, 3, 4, 5), passers_by=0, seed=1,
        genuine_similarity=0.35,
    )  # fmt: skip
    crowd = SyntheticDataset("crowd", GROUPS, identities=0, passers_by=3000, seed=2)
    return OpenSetProtocol([Role(people.embedded(), True), Role(crowd.embedded(), False)], ["gender"], seed=3)


def study(reviews: tuple[Review, ...] = ()) -> FusionStudy:
    return run_fusion_study(
        make_protocol(), 300, 2, 2, ["gender", "dataset"], SETTINGS, operating_threshold=0.5, reviews=reviews
    )


@pytest.fixture(scope="module")
def four_way() -> FusionStudy:
    return study()


def test_the_four_variants_search_one_watchlist_draw_with_the_same_people_and_images(four_way):
    baseline, enrolment, tracks, both = four_way.variants
    assert [(v.enrolment_images, v.probe_samples) for v in four_way.variants] == [
        (1, 1),
        (2, 1),
        (1, 2),
        (2, 2),
    ]
    assert all(set(v.run.enrolled) == set(baseline.run.enrolled) for v in four_way.variants)
    assert len(baseline.run.enrolled) == 300
    mated = {frozenset(v.run.mated.cluster.tolist()) for v in four_way.variants}
    nonmated = {frozenset(v.run.nonmated.cluster.tolist()) for v in four_way.variants}
    assert len(mated) == 1
    assert len(nonmated) == 1
    # Single-sample rows search every image that the track rows search together, and no other.
    images = {image for faces in tracks.mated_faces for image in faces}
    assert {image for (image,) in baseline.mated_faces} == images
    assert both.mated_faces == tracks.mated_faces
    assert enrolment.mated_faces == baseline.mated_faces
    assert len(baseline.run.nonmated) == sum(len(p.faces) for p in four_way.draw.nonmated)
    assert len(tracks.run.nonmated) == len(four_way.draw.nonmated)
    assert any(len(p.faces) == 2 for p in four_way.draw.nonmated)  # off-list people walk past as tracks
    # Multi-image enrolment fuses two images of each searched-for person into one template.
    assert enrolment.run.enrolled_images > baseline.run.enrolled_images == 300


def test_each_track_is_several_distinct_images_of_its_person_none_of_them_enrolled(four_way):
    both = four_way.variants[3]
    enrolled = {image for images in both.run.enrolled.values() for image in images}
    for person, faces in zip(both.run.mated.cluster.tolist(), both.mated_faces, strict=True):
        assert len(set(faces)) == 2
        assert not enrolled & set(faces)
        assert len(both.run.enrolled[person]) == 2


def test_a_passage_judged_to_be_a_listed_person_leaves_every_variant(four_way):
    listed = next(iter(four_way.variants[0].run.enrolled))
    walker = next(p for p in four_way.draw.nonmated if len(p.faces) == 2)
    dataset, image = walker.images[1]  # the passage's second face only: the whole passage must go
    review = Review(dataset, image, listed, SAME, "tester", "same person")
    reviewed = study((review,))
    assert reviewed.draw.excluded_passages == 1
    for variant in reviewed.variants:
        assert walker.cluster not in set(variant.run.nonmated.cluster.tolist())
    kept = {p.cluster for p in reviewed.draw.nonmated}
    assert kept == {p.cluster for p in four_way.draw.nonmated} - {walker.cluster}


def test_intervals_contain_each_estimate_and_fpir_meets_the_target(four_way):
    for variant in four_way.variants:
        for row in filter(None, (variant.at_target, variant.at_operating)):
            for rate in (row.tpir, row.fpir):
                for low, high in (rate.wilson, rate.clopper_pearson):
                    assert low <= rate.value <= high
            assert row.tpir.bootstrap is not None
            assert row.tpir.bootstrap[0] <= row.tpir.value <= row.tpir.bootstrap[1]
            for group in row.groups:
                if group.fnir.searches:
                    assert group.fnir.wilson[0] <= group.fnir.value <= group.fnir.wilson[1]
        assert variant.at_target.fpir.value <= four_way.target_fpir
        assert variant.at_target.threshold == variant.threshold_at_target
        assert {g.attribute for g in variant.at_target.groups} == {"gender", "dataset"}


def test_fusing_images_finds_more_listed_people_where_images_are_noisy(four_way):
    baseline, enrolment, tracks, both = (v.at_target.tpir.value for v in four_way.variants)
    assert baseline < enrolment < both
    assert baseline < tracks < both
    assert both - baseline >= 0.10


def test_a_track_scores_as_the_matcher_decides_at_every_threshold():
    """The threshold-free track score raises an alert exactly where ingest's rule does: a face alone, or the
    fused probe's best subject when one face of the track reached threshold - margin
    (lfr/services/ingest.py, _track_decision)."""
    rng = np.random.default_rng(11)
    gallery = rng.normal(size=(40, 16)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    subjects = [f"s{i}" for i in range(40)]
    index = FaissIndex(subjects, gallery)
    policy = TrackEvidencePolicy()
    for trial in range(200):
        centre = gallery[trial % 40] * rng.uniform(0.3, 1.0) + rng.normal(scale=0.3, size=16)
        faces = [centre + rng.normal(scale=0.35, size=16) for _ in range(int(rng.integers(2, 4)))]
        faces = [(f / np.linalg.norm(f)).astype(np.float32) for f in faces]
        singles = index.search(np.stack(faces), 5)
        scored = track_candidates(index, faces, singles, 5, policy)
        for threshold in np.arange(0.2, 0.95, 0.05):
            expected = matcher_alerts(index, faces, singles, float(threshold), policy)
            decision = decide(scored, float(threshold))
            got = decision.best.subject_id if decision.is_match and decision.best else None
            assert (got is not None) == bool(expected), (trial, threshold)
            # Which subject: the same, except where one face alone matched someone at this threshold
            # (ingest then consults no fused probe for that face): the documented approximation.
            face_matched = any(found and found[0].score >= threshold for found in singles)
            if got is not None and not face_matched:
                assert got in expected
    index.close()


def matcher_alerts(index, faces, singles, threshold, policy) -> set[str]:
    """The subjects ingest would alert for over one track's faces, face by face."""
    evidence = TrackEvidence(policy, monotonic=lambda: 0.0)
    key = ("w", "c", "s", "t")
    alerts = set()
    for position, (face, found) in enumerate(zip(faces, singles, strict=True)):
        wanted = found if found and found[0].score >= threshold - policy.support_margin else ()
        single = decide(wanted, threshold)
        if single.is_match and single.best:
            alerts.add(single.best.subject_id)
        fused = evidence.add(key, str(position), face, wanted, threshold)
        if fused is not None and not single.is_match:
            decision = decide(index.search(fused[None, :], 5)[0], threshold)
            if (
                decision.is_match
                and decision.best
                and evidence.supports(key, decision.best.subject_id, threshold)
            ):
                alerts.add(decision.best.subject_id)
    return alerts


def test_fusion_study_config_is_strict(tmp_path):
    config = tmp_path / "bad.yaml"
    document = yaml.safe_load((CONFIGS / "synthetic.yaml").read_text())
    config.write_text(yaml.safe_dump(document | {"fusion_study": {"probe_sample": 3}}))
    with pytest.raises(ConfigError, match="probe_sample"):
        load_eval_config(config)


def test_eval_run_reports_the_four_way_table(tmp_path):
    config = tmp_path / "synthetic.yaml"
    shutil.copy(CONFIGS / "synthetic.yaml", config)
    document = yaml.safe_load(config.read_text())
    document["datasets"][0]["synthetic"]["images_per_identity"] = 4
    document["scaling"] = None
    document["protocol"]["watchlist_sizes"] = [200]
    document["statistics"]["bootstrap_samples"] = 50
    document["fusion_study"] = {"enrolment_images": 2, "probe_samples": 2}
    config.write_text(yaml.safe_dump(document))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "run", str(config), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    fusion = report["fusion_study"]
    assert fusion["watchlist_size"] == 200
    assert [(v["enrolment_images"], v["probe_samples"]) for v in fusion["variants"]] == [
        (1, 1), (2, 1), (1, 2), (2, 2)
    ]  # fmt: skip
    operating = report["recommendation"]["operating_threshold"]
    assert fusion["operating_threshold"] == operating
    for variant in fusion["variants"]:
        assert variant["at_target_fpir"]["fpir"]["value"] <= fusion["target_fpir"]
        assert variant["at_target_fpir"]["groups"]
    assert "Multi-image enrolment and multi-sample probes" in (out / "report.html").read_text()
    assert "More reference photos" in (out / "summary.html").read_text()
    markdown = CliRunner().invoke(app, ["eval", "markdown", str(out / "report.json")])
    assert "Fusion study, N = 200" in markdown.output
