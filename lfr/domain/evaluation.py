"""The equity gate's view of an evaluation: may this model run at this threshold?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EquityGate(StrEnum):
    OFF = "off"
    WARN = "warn"  # authorise, but record a policy warning in the audit log
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class EvaluationSummary:
    id: str
    model_id: str
    dataset_fingerprint: str
    recommended_threshold: float  # lowest threshold with no significant demographic differential
    passed: bool
    report_sha256: str
    recorded_by: str
    recorded_at: datetime

    def covers(self, model_id: str, threshold: float) -> bool:
        return self.passed and self.model_id == model_id and threshold >= self.recommended_threshold
