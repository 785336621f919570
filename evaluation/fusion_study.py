"""The four-way fusion study (issue 10): enrolment {1 image, E images} x probe {single sample, S samples as
one track}, on ONE watchlist draw and ONE non-mated set, fused by the matcher's own code.

- Listed (mated) people: identities with at least E + S acquired images, in the main protocol's seeded
  order. Enrolment uses their first image, or their first E images fused into one unit mean template
  (lfr.domain.watchlist.mean_templates, as lfr.services.indexes builds the matcher's index). Probes are
  their images E+1 .. E+S in every variant, so the two enrolments are searched with the same images.
- Filler brings the list to N, drawn first from people with fewer than S images, so that people with S
  or more stay off the list as multi-sample non-mated searchers. A filler person is enrolled from up to
  E images (one, for most: LFW's filler people mostly have a single image).
- Non-mated set, the same in every variant: each off-list named person is one passage of their first
  (up to) S images; each image of a person with no identity (UTKFace: passers-by) is a one-face passage,
  since different images cannot honestly be said to be one person. A passage holding an image that a
  reviewer judged to be a listed person (audit.judged_listed) is dropped from every variant.
- Single-sample probes search every image of every passage alone: rates per image, as the main
  protocol. Multi-sample probes search each passage once as a track, through
  lfr.services.track_evidence.TrackEvidence: every face alone and, from the second face on, the fused
  probe (unit mean of the faces so far); an alert from the fused probe only for its best subject and only
  if one face supported that subject with at least threshold - support_margin. That rule is equivalent,
  at every threshold T, to scoring the fused path as min(fused score, best single score + margin) >= T,
  so each track gets one threshold-free candidate list and the harness's analysis runs unchanged. A
  one-face passage is a track of one face: exactly its single search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation import metrics
from evaluation.analysis import StatisticsSettings, ThresholdResult, analyse
from evaluation.audit import ImageRef, Review, judged_listed, subset_searches
from evaluation.datasets import EmbeddedSet
from evaluation.protocol import Identity, OpenSetProtocol, ProtocolError, Searches, WatchlistRun, seeded_rank
from lfr.adapters.faiss_index import FaissIndex
from lfr.domain.matching import Candidate
from lfr.domain.watchlist import mean_templates
from lfr.services.track_evidence import TrackEvidence, TrackEvidencePolicy

TRACK_CHUNK = 1024  # tracks held in one TrackEvidence table at once


@dataclass(frozen=True, slots=True)
class Passage:
    """One person passing: the images standing in for one track's faces, and who it is."""

    faces: tuple[tuple[EmbeddedSet, int], ...]
    cluster: str  # who walks past: "dataset:identity" (for mated passages, the listed subject id)

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple((e.dataset, e.samples[row].key) for e, row in self.faces)


@dataclass(frozen=True, slots=True)
class FusionDraw:
    """What the four variants share: who is listed, from which images, and every passage searched."""

    size: int
    listed: tuple[Identity, ...]
    mated: tuple[Passage, ...]
    nonmated: tuple[Passage, ...]
    excluded_passages: int  # non-mated passages dropped by the reviewed exclusions


@dataclass(frozen=True, slots=True)
class FusionVariant:
    enrolment_images: int
    probe_samples: int  # 1: every image searched alone
    run: WatchlistRun
    mated_faces: tuple[tuple[ImageRef, ...], ...]  # per mated search, the images it used
    threshold_at_target: float  # lowest threshold whose FPIR does not exceed the target
    at_target: ThresholdResult
    at_operating: ThresholdResult | None

    @property
    def name(self) -> str:
        enrol = "1 image" if self.enrolment_images == 1 else f"{self.enrolment_images} images (mean template)"
        probe = "single sample" if self.probe_samples == 1 else f"{self.probe_samples}-sample track"
        return f"{enrol} x {probe}"


@dataclass(frozen=True, slots=True)
class FusionStudy:
    draw: FusionDraw
    enrolment_images: int
    probe_samples: int
    support_margin: float
    target_fpir: float
    operating_threshold: float | None
    variants: tuple[FusionVariant, ...]  # baseline, multi-image enrolment, multi-sample probes, both


def draw_passages(
    protocol: OpenSetProtocol,
    size: int,
    enrolment_images: int,
    probe_samples: int,
    reviews: Sequence[Review] = (),
) -> FusionDraw:
    seed = protocol.seed
    needed = enrolment_images + probe_samples
    mated = sorted(
        (i for i in protocol.identities if len(i.rows) >= needed),
        key=lambda i: seeded_rank(seed, "list", i.key),
    )
    mated = mated[:size]
    others = [i for i in protocol.identities if 0 < len(i.rows) < needed]
    # People who could not walk past as a multi-sample track fill the list first.
    filler = sorted(others, key=lambda i: (len(i.rows) >= probe_samples, seeded_rank(seed, "filler", i.key)))
    filler = filler[: size - len(mated)]
    if len(mated) + len(filler) < size:
        raise ProtocolError(
            f"the fusion study's watchlist of {size} needs more identities than the data holds "
            f"({len(mated) + len(filler)}; no synthetic filler in this study)"
        )
    if not mated:
        raise ProtocolError(f"the fusion study needs people with at least {needed} acquired images; none has")
    listed = tuple(mated + filler)
    listed_keys = {i.key for i in listed}
    mated_passages = tuple(
        Passage(tuple((i.source, row) for row in i.rows[enrolment_images:needed]), cluster=i.key)
        for i in mated
    )
    nonmated = [
        Passage(tuple((i.source, row) for row in i.rows[:probe_samples]), cluster=i.key)
        for i in protocol.identities
        if i.key not in listed_keys
    ]
    for embedded in protocol.embedded_sets:
        for row, sample in enumerate(embedded.samples):
            if sample.identity is None and embedded.acquired[row]:
                nonmated.append(Passage(((embedded, row),), cluster=f"{embedded.dataset}#{row}"))
    excluded = judged_listed(reviews, listed_keys)
    kept = tuple(p for p in nonmated if excluded.isdisjoint(p.images))
    return FusionDraw(size, listed, mated_passages, kept, len(nonmated) - len(kept))


def enrolled_index(protocol: OpenSetProtocol, listed: Sequence[Identity], images: int) -> FaissIndex:
    """The watchlist as the matcher would search it: each person's first `images` images (fewer if they
    have fewer) fused into one unit mean template."""
    subject_of_row = [i.key for i in listed for _ in i.rows[:images]]
    vectors = np.concatenate([i.source.vectors[list(i.rows[:images])] for i in listed]).astype(np.float32)
    subjects, templates = mean_templates(subject_of_row, vectors)
    return FaissIndex(subjects, templates, protocol.index_spec)


def track_candidates(
    index: FaissIndex,
    faces: Sequence[np.ndarray],
    singles: Sequence[tuple[Candidate, ...]],
    top_k: int,
    policy: TrackEvidencePolicy,
) -> tuple[Candidate, ...]:
    """One track's candidates under the matcher's rule, threshold-free (see the module docstring): each
    subject's best single-face score, raised by a fused probe whose best subject it is to at most its
    support plus the margin."""
    evidence = TrackEvidence(dataclasses.replace(policy, enabled=True), monotonic=lambda: 0.0)
    key = ("fusion-study", "", "", "track")
    best: dict[str, float] = {}
    for position, (face, found) in enumerate(zip(faces, singles, strict=True)):
        for candidate in found:
            best[candidate.subject_id] = max(best.get(candidate.subject_id, -np.inf), candidate.score)
        fused = evidence.add(key, str(position), face, found)
        if fused is None:
            continue
        fused_found = index.search(fused[None, :], top_k)[0]
        if fused_found:
            top = fused_found[0]
            path = min(top.score, evidence.support(key, top.subject_id) + policy.support_margin)
            best[top.subject_id] = max(best.get(top.subject_id, -np.inf), path)
    evidence.clear()
    ranked = sorted(best.items(), key=lambda item: -item[1])[:top_k]
    return tuple(Candidate(subject, float(score)) for subject, score in ranked)


def _searches(
    protocol: OpenSetProtocol,
    index: FaissIndex,
    passages: Sequence[Passage],
    mated: bool,
    track: bool,
    policy: TrackEvidencePolicy,
) -> Searches:
    faces = [face for p in passages for face in p.faces]
    clusters = [p.cluster for p in passages for _ in p.faces]
    singles = protocol.search(index, faces, cluster=clusters, mated_identity=clusters if mated else None)
    if not track:
        return singles
    starts = np.cumsum([0, *(len(p.faces) for p in passages)])
    tracks = [
        track_candidates(
            index,
            [e.vectors[row] for e, row in p.faces],
            singles.candidates[start : start + len(p.faces)],
            protocol.top_k,
            policy,
        )
        for p, start in zip(passages, starts[:-1].tolist(), strict=True)
    ]
    # Each track carries its first face's labels (one person: the same) and image reference.
    first = np.zeros(len(faces), dtype=bool)
    first[starts[:-1]] = True
    return dataclasses.replace(subset_searches(singles, first), candidates=tuple(tracks))


def run_fusion_study(
    protocol: OpenSetProtocol,
    size: int,
    enrolment_images: int,
    probe_samples: int,
    group_by: Sequence[str],
    settings: StatisticsSettings,
    operating_threshold: float | None,
    target_fpir: float = 0.001,
    reviews: Sequence[Review] = (),
    policy: TrackEvidencePolicy | None = None,
) -> FusionStudy:
    policy = policy or TrackEvidencePolicy()
    draw = draw_passages(protocol, size, enrolment_images, probe_samples, reviews)
    variants = []
    # Baseline first, then multi-image enrolment, then multi-sample probes, then both.
    for probe in (1, probe_samples):
        for enrol in (1, enrolment_images):
            index = enrolled_index(protocol, draw.listed, enrol)
            try:
                mated = _searches(protocol, index, draw.mated, True, probe > 1, policy)
                nonmated = _searches(protocol, index, draw.nonmated, False, probe > 1, policy)
            finally:
                index.close()
            run = WatchlistRun(
                size=size,
                mated_identities=len(draw.mated),
                real_filler=size - len(draw.mated),
                synthetic_filler=0,
                enrolled_images=sum(min(enrol, len(i.rows)) for i in draw.listed),
                mated=mated,
                nonmated=nonmated,
                enrolled={
                    i.key: tuple((i.source.dataset, i.source.samples[r].key) for r in i.rows[:enrol])
                    for i in draw.listed
                },
                index=protocol.index_spec.label(),
            )
            variants.append(
                _variant(run, draw, enrol, probe, group_by, settings, operating_threshold, target_fpir)
            )
    return FusionStudy(
        draw, enrolment_images, probe_samples, policy.support_margin, target_fpir, operating_threshold,
        tuple(variants),
    )  # fmt: skip


def _variant(
    run: WatchlistRun,
    draw: FusionDraw,
    enrol: int,
    probe: int,
    group_by: Sequence[str],
    settings: StatisticsSettings,
    operating: float | None,
    target: float,
) -> FusionVariant:
    ranks, scores = run.mated.mated_ranks_and_scores()
    _, at_target = metrics.fnir_at_fpir(ranks, scores, run.nonmated.top_scores, target, settings.rank)
    wanted = sorted({at_target} | ({operating} if operating is not None else set()))
    analysis = analyse(run, wanted, group_by, settings, fixed_fpirs=())
    rows = {r.threshold: r for r in analysis.rows}
    faces = (
        tuple(p.images for p in draw.mated)
        if probe > 1
        else tuple((image,) for p in draw.mated for image in p.images)
    )
    return FusionVariant(
        enrol, probe, run, faces, at_target, rows[at_target], None if operating is None else rows[operating]
    )
