"""Match / no-match decisions, calibrated on the catalog itself.

For a sample of products we build the queries `prodmatch eval` uses (an altered copy of the product photo, and
an attribute + name text) and search the catalog once per query. The source product's score is a *positive*
(what a true match scores); the best score among all other products (duplicate listings excluded) is a
*negative* (what the top hit scores when the product is not in the catalog). Each carries its *margin*: how far
it stands above the best product outside its duplicate group. A logistic regression on (score, margin), with
both classes weighted equally, gives the confidence; the decision is "match" when it reaches 0.5. The reported
threshold is the score that would reach 0.5 at this query's margin. Using the margin as well as the score
raised balanced accuracy on held-out myntra-dev queries from 0.76 to 0.87 (docs/benchmarks.md): a true match
stands out from the rest of the catalog, a look-alike does not. Image and text queries are calibrated
separately: their scores live on different scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DECISION_KEY = "decision"


@dataclass
class Calibration:
    """Logistic confidence over (top score, margin) for one query kind."""

    score_weight: float
    margin_weight: float
    intercept: float
    positives: int
    negatives: int
    balanced_accuracy: float
    real_verdicts: int = 0  # of the samples, how many are people's verdicts on real queries (feedback)

    def confidence(self, score: float, margin: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.score_weight * score + self.margin_weight * margin + self.intercept))))

    def threshold(self, margin: float) -> float:
        """The top score at which a result with this margin becomes a match."""
        return -(self.intercept + self.margin_weight * margin) / self.score_weight


@dataclass
class Decision:
    is_match: bool
    confidence: float
    threshold: float
    real_verdicts: int = 0  # people's verdicts on real queries that the calibration rests on


def decide(calibration: Calibration | None, score: float | None, margin: float) -> Decision | None:
    """The decision for a result whose top hit scores SCORE, MARGIN above the next distinct product."""
    if calibration is None or score is None:
        return None
    confidence = calibration.confidence(score, margin)
    threshold = round(calibration.threshold(margin), 6)
    return Decision(confidence >= 0.5, round(confidence, 4), threshold, calibration.real_verdicts)


Features = tuple[float, float]  # (score, margin)
# A person's verdict on a real query counts as much as this many simulated queries: it is the real distribution.
REAL_WEIGHT = 5.0


@dataclass
class Samples:
    """(score, margin) of queries whose top hit was the product (positives) and was not (negatives)."""

    positives: list[Features]
    negatives: list[Features]


def fit(positives: Sequence[Features], negatives: Sequence[Features], real: Samples | None = None) -> Calibration:
    """Class-balanced logistic regression of match / no-match on (score, margin) over simulated POSITIVES and
    NEGATIVES; REAL samples (people's verdicts) weigh REAL_WEIGHT times a simulated one within their class."""
    real = real or Samples([], [])
    pos = np.asarray([*positives, *real.positives], dtype=np.float64).reshape(-1, 2)
    neg = np.asarray([*negatives, *real.negatives], dtype=np.float64).reshape(-1, 2)
    features = np.vstack([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weights = np.concatenate(
        [_class_weights(len(positives), len(real.positives)), _class_weights(len(negatives), len(real.negatives))]
    )
    score_weight, margin_weight, intercept = _logistic(features, labels, weights)
    verdicts = len(real.positives) + len(real.negatives)
    calibration = Calibration(score_weight, margin_weight, intercept, len(pos), len(neg), 0.0, verdicts)
    said = np.array([calibration.confidence(s, m) >= 0.5 for s, m in features])
    calibration.balanced_accuracy = round(float((said[labels == 1].mean() + (~said[labels == 0]).mean()) / 2), 4)
    return calibration


def _class_weights(simulated: int, real: int) -> np.ndarray:
    """Weights summing to 0.5 for one class, a real sample weighing REAL_WEIGHT simulated ones."""
    raw = np.concatenate([np.ones(simulated), np.full(real, REAL_WEIGHT)])
    weights: np.ndarray = 0.5 * raw / raw.sum()
    return weights


def _logistic(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, steps: int = 100) -> np.ndarray:
    """Weighted logistic regression by Newton's method, lightly regularised so separable data stays finite."""
    design = np.hstack([features, np.ones((len(features), 1))])
    coefficients = np.zeros(design.shape[1])
    ridge = 1e-4 * np.eye(design.shape[1])
    for _ in range(steps):
        probability = 1.0 / (1.0 + np.exp(-design @ coefficients))
        gradient = design.T @ (weights * (probability - labels)) + ridge @ coefficients
        hessian = design.T @ (design * (weights * probability * (1 - probability))[:, None]) + ridge
        coefficients -= np.linalg.solve(hessian, gradient)
    return coefficients


def runner_up(scores: dict[str, float], top: str, groups: dict[str, set[str]]) -> float | None:
    """The best score among products outside TOP's duplicate group."""
    group = groups.get(top, {top})
    return max((score for pid, score in scores.items() if pid not in group), default=None)


def margin_of(scores: dict[str, float], top: str, groups: dict[str, set[str]]) -> float:
    second = runner_up(scores, top, groups)
    return scores[top] - second if second is not None else 1.0


def split_scores(
    rankings: Sequence[dict[str, float]], sources: Sequence[str], groups: dict[str, set[str]]
) -> tuple[list[Features], list[Features]]:
    """(score, margin) of the source product (positives) and of the best other product (negatives)."""
    positives: list[Features] = []
    negatives: list[Features] = []
    for scores, source in zip(rankings, sources, strict=True):
        accepted = groups.get(source, {source})
        own = max(accepted & scores.keys(), key=scores.__getitem__, default=None)
        others = {pid: score for pid, score in scores.items() if pid not in accepted}
        if own is not None:
            positives.append((scores[own], margin_of(scores, own, groups)))
        if others:
            best = max(others, key=others.__getitem__)
            negatives.append((others[best], margin_of(others, best, groups)))
    return positives, negatives


def to_meta(calibrations: dict[str, Calibration]) -> dict[str, Any]:
    return {kind: asdict(calibration) for kind, calibration in calibrations.items()}


def from_meta(saved: dict[str, Any] | None) -> dict[str, Calibration]:
    return {kind: Calibration(**values) for kind, values in (saved or {}).items()}
