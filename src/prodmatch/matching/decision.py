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

Image queries that were verified geometrically (matching/verification.py) add a third signal, log(1 + inliers) of
the top hit: it tells "this very product" from a look-alike when score and margin cannot. On hard altered photos of
held-out myntra-dev products the decision's recall at 0.99 "no match" for unknown products went from 0.56 to 0.98.
The response says why: `evidence` holds the score, margin and inliers the decision was taken on.
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
    inlier_weight: float = 0.0  # on log(1 + inliers); 0 for text and for calibrations made before verification

    def confidence(self, score: float, margin: float, inliers: float = 0) -> float:
        logit = self.score_weight * score + self.margin_weight * margin + self._evidence(inliers) + self.intercept
        return float(1.0 / (1.0 + np.exp(-logit)))

    def threshold(self, margin: float, inliers: float = 0) -> float:
        """The top score at which a result with this margin (and inliers) becomes a match."""
        return -(self.intercept + self.margin_weight * margin + self._evidence(inliers)) / self.score_weight

    def _evidence(self, inliers: float) -> float:
        return self.inlier_weight * float(np.log1p(inliers))


@dataclass
class Decision:
    is_match: bool
    confidence: float
    threshold: float
    real_verdicts: int = 0  # people's verdicts on real queries that the calibration rests on
    evidence: dict[str, float] | None = None  # what it was decided on: score, margin (and inliers when verified)


def decide(
    calibration: Calibration | None, score: float | None, margin: float, inliers: int | None = None
) -> Decision | None:
    """The decision for a result whose top hit scores SCORE, MARGIN above the next distinct product, with INLIERS
    when the top hit was verified geometrically."""
    if calibration is None or score is None:
        return None
    count = inliers or 0
    confidence = calibration.confidence(score, margin, count)
    threshold = round(calibration.threshold(margin, count), 6)
    evidence = {"score": round(score, 6), "margin": round(margin, 6)}
    if inliers is not None:
        evidence["inliers"] = inliers
    return Decision(confidence >= 0.5, round(confidence, 4), threshold, calibration.real_verdicts, evidence)


# (score, margin) or (score, margin, inliers): inliers are 0 where a query was not verified
Features = tuple[float, ...]
# A person's verdict on a real query counts as much as this many simulated queries: it is the real distribution.
REAL_WEIGHT = 5.0


@dataclass
class Samples:
    """(score, margin) of queries whose top hit was the product (positives) and was not (negatives)."""

    positives: list[Features]
    negatives: list[Features]
    queries: int | None = None  # the real queries they come from (a replayed photo gives two samples); None: one each


def fit(positives: Sequence[Features], negatives: Sequence[Features], real: Samples | None = None) -> Calibration:
    """Class-balanced logistic regression of match / no-match on (score, margin) over simulated POSITIVES and
    NEGATIVES; REAL samples (people's verdicts) weigh REAL_WEIGHT times a simulated one within their class."""
    real = real or Samples([], [])
    pos, neg = _rows([*positives, *real.positives]), _rows([*negatives, *real.negatives])
    features = np.vstack([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weights = np.concatenate(
        [_class_weights(len(positives), len(real.positives)), _class_weights(len(negatives), len(real.negatives))]
    )
    verified = bool(features[:, 2].any())  # without inliers the fit stays (score, margin): nothing to weigh
    design = np.column_stack([features[:, :2], np.log1p(features[:, 2])]) if verified else features[:, :2]
    coefficients = _logistic(design, labels, weights)
    verdicts = real.queries if real.queries is not None else len(real.positives) + len(real.negatives)
    score_weight, margin_weight, intercept = float(coefficients[0]), float(coefficients[1]), float(coefficients[-1])
    calibration = Calibration(score_weight, margin_weight, intercept, len(pos), len(neg), 0.0, verdicts)
    calibration.inlier_weight = float(coefficients[2]) if verified else 0.0
    said = np.array([calibration.confidence(s, m, n) >= 0.5 for s, m, n in features])
    calibration.balanced_accuracy = round(float((said[labels == 1].mean() + (~said[labels == 0]).mean()) / 2), 4)
    return calibration


def _rows(samples: Sequence[Features]) -> np.ndarray:
    """Samples as (score, margin, inliers) rows, inliers 0 where a sample has none."""
    rows = np.zeros((len(samples), 3))
    for row, sample in zip(rows, samples, strict=True):
        row[: len(sample)] = sample
    return rows


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
    rankings: Sequence[dict[str, float]],
    sources: Sequence[str],
    groups: dict[str, set[str]],
    inliers: Sequence[dict[str, int]] | None = None,
) -> tuple[list[Features], list[Features]]:
    """(score, margin) of the source product (positives) and of the best other product (negatives): the top hit
    had the source not been in the catalog. With INLIERS (per ranking, of its verified products) each sample also
    carries its product's inliers."""
    positives: list[Features] = []
    negatives: list[Features] = []
    for number, (scores, source) in enumerate(zip(rankings, sources, strict=True)):
        accepted = groups.get(source, {source})
        own = max(accepted & scores.keys(), key=scores.__getitem__, default=None)
        others = {pid: score for pid, score in scores.items() if pid not in accepted}
        counts = None if inliers is None else inliers[number]
        if own is not None:
            positives.append(_sample(scores, own, groups, counts))
        if others:
            negatives.append(_sample(others, max(others, key=others.__getitem__), groups, counts))
    return positives, negatives


def _sample(scores: dict[str, float], top: str, groups: dict[str, set[str]], counts: dict[str, int] | None) -> Features:
    base = (scores[top], margin_of(scores, top, groups))
    return base if counts is None else (*base, float(counts.get(top, 0)))


def to_meta(calibrations: dict[str, Calibration]) -> dict[str, Any]:
    return {kind: asdict(calibration) for kind, calibration in calibrations.items()}


def from_meta(saved: dict[str, Any] | None) -> dict[str, Calibration]:
    return {kind: Calibration(**values) for kind, values in (saved or {}).items()}
