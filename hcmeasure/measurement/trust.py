"""How far one HC can be trusted: evidence features, a calibrated interval, a review flag.

Three steps, each a plain function:

* :func:`trust_features`: numbers that say how sure the measurement is, from what the
  models recorded (``HeadMeasurement.evidence``) and from the scan along the fitted
  ellipse. All are dimensionless:

  - ``member_spread``: relative spread (SD / mean) of the head size, as the square root
    of the head area, over the refiner ensemble's members (0 for one model);
  - ``detector_gap``: ``|sqrt(detector area / ellipse area) - 1|``, the relative size
    difference between the detector's own mask and the refined ellipse;
  - ``second_score``: the best other detection that is not the same head;
  - ``uncertain_fraction``: refiner cells with head probability in (0.25, 0.75) per cell
    of boundary length (about 1 for a sharp outline);
  - ``outside_fraction``: share of the ellipse's outline outside the scan;
  - ``weak_echo_fraction``: share of the outline (inside the scan) along which no skull
    echo is seen: the brightest pixel within 8 % of the radius either side of the outline
    is under half of the outline's typical (90th-percentile) echo;
  - ``axis_ratio``: minor / major semi-axis (HC18's reference heads: 0.66-0.96);
  - ``fit_iou``, ``score``: the ellipse fit's IoU with its mask, the detector's score;
  - ``small_head`` = 100 mm / HC and ``large_head`` = HC / 300 mm: the relative error of
    a small head is larger (a pixel is a larger share of it), and third-trimester heads
    have faint lateral skull walls.

* :class:`TrustCalibration` ``.interval``: a split-conformal interval, ``hc_mm * (1 ± q *
  sigma)``, where ``sigma`` is a non-negative combination of the features fitted to the
  relative out-of-fold errors of half the calibration rows (:func:`fit_interval`), and
  ``q`` the conformal quantile of ``|error| / sigma`` on the other half. Wide where the
  evidence is poor, narrow where it is good.

* :class:`TrustCalibration` ``.review_reasons``: the rules that flag a measurement for a
  human look (status ``review``), each a feature over a threshold, with a short reason:
  :data:`DEFAULT_RULES`, which need no calibration, and rules fitted on out-of-fold rows
  (:func:`fit_review_rules`).

The calibration is a JSON written by ``benchmarks/hc18_cv.py report --write-calibration``
from out-of-fold predictions and named by ``HCMEASURE.TRUST.CALIBRATION``; docs/trust.md
gives the figures.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .ellipse import Ellipse

__all__ = [
    "FEATURE_NAMES",
    "ECHO_BAND",
    "trust_features",
    "TrustAssessment",
    "assess_head",
    "weak_echo_fraction",
    "outside_fraction",
    "ReviewRule",
    "TrustCalibration",
    "load_trust_calibration",
    "DEFAULT_RULES",
    "DERIVED_FEATURES",
    "CANDIDATE_RULES",
    "MEMBER_SPREAD_LIMIT",
    "with_interval_halfwidth",
    "conformal_quantile",
    "fit_interval",
    "fit_review_rules",
    "fit_trust_calibration",
]

FEATURE_NAMES = (
    "member_spread",
    "detector_gap",
    "second_score",
    "uncertain_fraction",
    "outside_fraction",
    "weak_echo_fraction",
    "axis_ratio",
    "fit_iou",
    "score",
    "small_head",
    "large_head",
)

#: Features derived from the calibration itself: the interval's half-width in mm (a rule
#: on it flags the images whose predicted error is largest).
DERIVED_FEATURES = ("interval_halfwidth_mm",)

#: Radial half-width of the band searched for the skull echo, as a fraction of the radius.
ECHO_BAND = 0.08
#: An outline point is "weak" when its echo is under this share of the outline's typical echo.
ECHO_WEAK_SHARE = 0.5
_OUTLINE_POINTS = 180
_BAND_STEPS = 9


def _outline(ellipse: Ellipse, scale: float, num: int) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
    ca, sa = math.cos(ellipse.angle), math.sin(ellipse.angle)
    a, b = ellipse.a * scale, ellipse.b * scale
    x = ellipse.cx + a * np.cos(t) * ca - b * np.sin(t) * sa
    y = ellipse.cy + a * np.cos(t) * sa + b * np.sin(t) * ca
    return np.stack([x, y], axis=1)


def _inside(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (points[:, 0] >= -0.5) & (points[:, 0] <= w - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] <= h - 0.5)


def outside_fraction(ellipse: Ellipse, shape: tuple[int, int]) -> float:
    """Share of the ellipse's outline (pixel-centre frame) outside an image of ``shape`` (H, W)."""
    return float(1.0 - _inside(_outline(ellipse, 1.0, _OUTLINE_POINTS), shape).mean())


def weak_echo_fraction(gray: np.ndarray, ellipse: Ellipse) -> float:
    """Share of the outline inside the scan along which the skull echo is weak (see the
    module docstring). 1.0 when no part of the outline is inside the scan; NaN when the
    scan is blank (all zero) along the whole outline, where there is no echo to compare."""
    gray = np.asarray(gray)
    h, w = gray.shape[:2]
    scales = np.linspace(1.0 - ECHO_BAND, 1.0 + ECHO_BAND, _BAND_STEPS)
    inside = _inside(_outline(ellipse, 1.0, _OUTLINE_POINTS), (h, w))
    if not inside.any():
        return 1.0
    peaks = np.zeros(_OUTLINE_POINTS)
    for s in scales:
        pts = _outline(ellipse, float(s), _OUTLINE_POINTS)
        xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
        ok = _inside(pts, (h, w))
        peaks = np.maximum(peaks, np.where(ok, gray[yi, xi].astype(np.float64), 0.0))
    peaks = peaks[inside]
    typical = float(np.percentile(peaks, 90))
    if typical <= 0:
        return float("nan")
    return float((peaks < ECHO_WEAK_SHARE * typical).mean())


def trust_features(head, gray: np.ndarray | None, hc_mm: float | None = None,
                   ellipse_mm: Ellipse | None = None) -> dict[str, float]:
    """The features of :data:`FEATURE_NAMES` for a measured head (``HeadMeasurement`` with
    an ellipse) on its scan ``gray`` (H, W) whose HC is ``hc_mm``; a feature that cannot be
    computed (no scan, no HC in mm) is NaN. With non-square pixels, ``ellipse_mm`` (the
    head in millimetres) gives the shape (``axis_ratio``); the pixel ellipse gives the rest."""
    e: Ellipse = head.ellipse
    ev = head.evidence or {}
    nan = float("nan")
    areas = [float(v) for v in ev.get("member_areas_px", [])]
    roots = np.sqrt(np.maximum(areas, 0.0)) if areas else np.array([])
    spread = float(roots.std() / roots.mean()) if len(roots) > 1 and roots.mean() > 0 else (0.0 if len(roots) == 1 else nan)
    det_area = ev.get("detector_area_px")
    gap = abs(math.sqrt(det_area / e.area) - 1.0) if det_area is not None and e.area > 0 else nan
    feats = {
        "member_spread": spread,
        "detector_gap": gap,
        "second_score": float(ev.get("second_score", nan)),
        "uncertain_fraction": float(ev.get("uncertain_fraction", nan)),
        "outside_fraction": nan,
        "weak_echo_fraction": nan,
        "axis_ratio": (ellipse_mm or e).b / (ellipse_mm or e).a,
        "fit_iou": nan if head.fit_iou is None else float(head.fit_iou),
        "score": nan if head.score is None else float(head.score),
        "small_head": 100.0 / hc_mm if hc_mm else nan,
        "large_head": hc_mm / 300.0 if hc_mm else nan,
    }
    if gray is not None:
        feats["outside_fraction"] = outside_fraction(e, gray.shape[:2])
        feats["weak_echo_fraction"] = weak_echo_fraction(gray, e)
    return feats


@dataclass(frozen=True)
class ReviewRule:
    """Flag for review when ``feature`` is above ``above`` (or below ``below``)."""

    feature: str
    reason: str
    above: float | None = None
    below: float | None = None

    def fires(self, features: Mapping[str, float]) -> bool:
        v = features.get(self.feature)
        if v is None or not math.isfinite(v):
            return False
        return (self.above is not None and v > self.above) or (self.below is not None and v < self.below)

    def to_json(self) -> dict:
        return {k: v for k, v in (("feature", self.feature), ("reason", self.reason),
                                  ("above", self.above), ("below", self.below)) if v is not None}


#: Rules that need no calibration: evidence no correctly measured head shows. The shape
#: limit is below every one of the 809 HC18 reference ellipses (smallest minor/major 0.66);
#: the last three thresholds were set beyond the largest values on the 158 hc18_val scans
#: measured by an earlier default model (weak echo 0.66, detector gap 0.04, second score
#: 0.09; benchmarks/results/hc18_default_f4_oof.csv). Out of fold with the cv5 ensemble
#: (benchmarks/results/hc18_cv5_oof.csv) each fires on 3-4 of the 809 scans.
DEFAULT_RULES = (
    ReviewRule("outside_fraction", "ellipse_leaves_image", above=0.05),
    ReviewRule("axis_ratio", "implausible_shape", below=0.6),
    ReviewRule("weak_echo_fraction", "weak_skull_echo", above=0.7),
    ReviewRule("detector_gap", "detector_refiner_disagree", above=0.1),
    ReviewRule("second_score", "second_head_candidate", above=0.5),
)


@dataclass(frozen=True)
class TrustCalibration:
    """Interval and review rules fitted on out-of-fold predictions.

    ``sigma = max(sigma_floor, intercept + sum(weights[f] * term(f)))`` is the
    predicted relative error; the interval is ``hc_mm * (1 - q sigma, 1 + q sigma)``
    with ``q`` the conformal quantile at ``coverage``; ``term(f)`` is the feature, or one
    minus it for ``fit_iou`` and ``score`` (larger always means less sure)."""

    coverage: float = 0.9
    q: float | None = None
    intercept: float = 0.0
    weights: Mapping[str, float] = field(default_factory=dict)
    sigma_floor: float = 1e-3
    rules: Sequence[ReviewRule] = DEFAULT_RULES
    source: str = ""

    def sigma(self, features: Mapping[str, float]) -> float:
        s = self.intercept
        for name, w in self.weights.items():
            s += w * _term(name, features.get(name))
        return max(self.sigma_floor, s)

    def interval(self, hc_mm: float, features: Mapping[str, float]) -> tuple[float, float] | None:
        """``(low, high)`` in mm, or None without a calibrated ``q``."""
        if self.q is None:
            return None
        half = self.q * self.sigma(features)
        return hc_mm * max(0.0, 1.0 - half), hc_mm * (1.0 + half)

    def review_reasons(self, features: Mapping[str, float], hc_mm: float | None = None) -> list[str]:
        """Reasons (in rule order, no repeats) of the rules that fire. With ``hc_mm`` and a
        calibrated interval, rules may also test ``interval_halfwidth_mm``."""
        features = with_interval_halfwidth(self, features, hc_mm)
        out = []
        for rule in self.rules:
            if rule.fires(features) and rule.reason not in out:
                out.append(rule.reason)
        return out

    def to_json(self) -> dict:
        return {
            "coverage": self.coverage, "q": self.q, "intercept": self.intercept, "weights": dict(self.weights),
            "sigma_floor": self.sigma_floor, "rules": [r.to_json() for r in self.rules], "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "TrustCalibration":
        unknown = set(data.get("weights", {})) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown trust features {sorted(unknown)}; known: {', '.join(FEATURE_NAMES)}")
        rules = tuple(ReviewRule(**r) for r in data.get("rules", [r.to_json() for r in DEFAULT_RULES]))
        for r in rules:
            if r.feature not in FEATURE_NAMES + DERIVED_FEATURES:
                raise ValueError(f"review rule on unknown feature {r.feature!r}")
        return cls(coverage=float(data.get("coverage", 0.9)), q=data.get("q"),
                   intercept=float(data.get("intercept", 0.0)), weights=dict(data.get("weights", {})),
                   sigma_floor=float(data.get("sigma_floor", 1e-3)), rules=rules, source=str(data.get("source", "")))


def load_trust_calibration(path) -> TrustCalibration:
    """Read a calibration JSON; a missing or malformed file is a ``ValueError`` naming it."""
    path = Path(path)
    try:
        return TrustCalibration.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ValueError(f"{path}: trust calibration not found (HCMEASURE.TRUST.CALIBRATION)") from None
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid trust calibration ({exc})") from exc


# ------------------------------------------------------------------ fitting on out-of-fold rows

#: Features the interval's sigma is a (non-negative) combination of, each turned so that
#: larger means less sure. ``member_spread`` is left out: out-of-fold predictions come from
#: one model each, so its weight cannot be fitted on them.
SIGMA_TERMS = ("detector_gap", "uncertain_fraction", "weak_echo_fraction", "outside_fraction",
               "fit_iou", "score", "second_score", "small_head", "large_head")
_ONE_MINUS = ("fit_iou", "score")


def _term(name: str, value: float) -> float:
    if value is None or not math.isfinite(value):
        return 0.0
    return 1.0 - value if name in _ONE_MINUS else value


def conformal_quantile(scores: Sequence[float], coverage: float) -> float:
    """Split-conformal quantile: the ``ceil((n + 1) coverage)``-th smallest score (the
    largest score when that rank exceeds n)."""
    s = np.sort(np.asarray(scores, np.float64))
    if not len(s):
        raise ValueError("no calibration scores")
    k = min(len(s), int(math.ceil((len(s) + 1) * coverage)))
    return float(s[k - 1])


def fit_interval(rows: Sequence[Mapping], coverage: float = 0.9) -> TrustCalibration:
    """Interval calibration from measured out-of-fold rows (``hc_mm``, ``truth_hc_mm`` and
    the features): sigma by non-negative least squares of the relative error's magnitude
    on the :data:`SIGMA_TERMS`, fitted on one half of the rows (by image order), and the
    conformal quantile of ``|relative error| / sigma`` on the other half."""
    from scipy.optimize import nnls

    rows = [r for r in rows if math.isfinite(r.get("hc_mm", float("nan")))]
    fit_rows, cal_rows = rows[0::2], rows[1::2]
    x = np.array([[1.0] + [_term(t, r.get(t)) for t in SIGMA_TERMS] for r in fit_rows])
    y = np.array([abs(r["hc_mm"] - r["truth_hc_mm"]) / r["hc_mm"] for r in fit_rows])
    coef, _ = nnls(x, y)
    weights = {t: float(c) for t, c in zip(SIGMA_TERMS, coef[1:]) if c > 0}
    cal = TrustCalibration(coverage=coverage, q=None, intercept=float(coef[0]), weights=weights)
    sigmas = [cal.sigma(r) for r in cal_rows]
    scores = [abs(r["hc_mm"] - r["truth_hc_mm"]) / r["hc_mm"] / s for r, s in zip(cal_rows, sigmas)]
    return TrustCalibration(coverage=coverage, q=conformal_quantile(scores, coverage),
                            intercept=cal.intercept, weights=weights)

#: Rules the review flag is chosen from: (feature, "above" or "below", reason).
CANDIDATE_RULES = (
    ("detector_gap", "above", "detector_refiner_disagree"),
    ("weak_echo_fraction", "above", "weak_skull_echo"),
    ("uncertain_fraction", "above", "uncertain_outline"),
    ("second_score", "above", "second_head_candidate"),
    ("fit_iou", "below", "poor_ellipse_fit"),
    ("score", "below", "low_detection_score"),
    ("axis_ratio", "below", "implausible_shape"),
    ("outside_fraction", "above", "ellipse_leaves_image"),
    ("interval_halfwidth_mm", "above", "wide_interval"),
)
#: Ensemble members whose head sizes differ by more than this relative SD disagree. Not
#: fitted (out-of-fold rows come from one model each): on the 47 HC18 test scans no fold
#: saw, the default's five members differ by 0.21 % (median) to 0.79 % at most
#: (benchmarks/member_spread.py); 2 % of a 170 mm head is 3.4 mm.
MEMBER_SPREAD_LIMIT = 0.02


def fit_review_rules(rows: Sequence[Mapping], *, error_mm: float = 5.0, max_flag_rate: float = 0.04,
                     false_alarm_cost: float = 0.25, gross_error_mm: float = 10.0,
                     gross_weight: float = 2.0) -> tuple[ReviewRule, ...]:
    """Review rules chosen greedily on measured out-of-fold rows: starting from
    :data:`DEFAULT_RULES`, add the candidate rule and threshold whose newly flagged rows
    gain the most, while at most ``max_flag_rate`` of the rows are flagged; stop when no
    rule gains. A new row with ``|error| > error_mm`` gains 1, one with ``|error| >
    gross_error_mm`` ``gross_weight`` more (every gross error should be flagged), one
    without costs ``false_alarm_cost``. The ensemble rule (:data:`MEMBER_SPREAD_LIMIT`) is
    appended."""
    rows = [r for r in rows if math.isfinite(r.get("hc_mm", float("nan")))]
    n = len(rows)
    errors_mm = [abs(r["hc_mm"] - r["truth_hc_mm"]) for r in rows]
    bad = {i for i, e in enumerate(errors_mm) if e > error_mm}
    gross = {i for i, e in enumerate(errors_mm) if e > gross_error_mm}
    rules = list(DEFAULT_RULES)
    flagged = {i for i, r in enumerate(rows) if any(rule.fires(r) for rule in rules)}
    used: set[str] = set()  # one fitted rule per feature (a default rule may be tightened)
    while True:
        best, best_gain = None, 0.0
        for feature, side, reason in CANDIDATE_RULES:
            if feature in used:
                continue
            values = sorted({float(r[feature]) for r in rows if math.isfinite(r.get(feature, float("nan")))})
            if len(values) < 2:
                continue
            # thresholds between neighbouring values, over the outer 10 % on the rule's side
            cut = max(1, len(values) // 10)
            edge = values[-cut - 1:] if side == "above" else values[:cut + 1]
            for lo, hi in zip(edge[:-1], edge[1:]):
                t = 0.5 * (lo + hi)
                rule = ReviewRule(feature, reason, **{side: t})
                new = {i for i, r in enumerate(rows) if i not in flagged and rule.fires(r)}
                if not new or len(flagged) + len(new) > max_flag_rate * n:
                    continue
                gain = len(new & bad) + gross_weight * len(new & gross) - false_alarm_cost * len(new - bad)
                if gain > best_gain:
                    best, best_gain = rule, gain
        if best is None:
            break
        rules.append(best)
        used.add(best.feature)
        flagged |= {i for i, r in enumerate(rows) if best.fires(r)}
    rules.append(ReviewRule("member_spread", "ensemble_members_disagree", above=MEMBER_SPREAD_LIMIT))
    return tuple(rules)


def fit_trust_calibration(rows: Sequence[Mapping], *, coverage: float = 0.9, source: str = "") -> TrustCalibration:
    """Interval (:func:`fit_interval`) and review rules (:func:`fit_review_rules`) on rows."""
    rows = [r for r in rows if math.isfinite(r.get("hc_mm", float("nan")))]
    interval = fit_interval(rows, coverage)
    rules = fit_review_rules([with_interval_halfwidth(interval, r, r["hc_mm"]) for r in rows])
    return TrustCalibration(coverage=coverage, q=interval.q, intercept=interval.intercept,
                            weights=interval.weights, rules=rules, source=source)


def with_interval_halfwidth(calibration: TrustCalibration, features: Mapping[str, float],
                            hc_mm: float | None) -> Mapping[str, float]:
    """``features`` plus ``interval_halfwidth_mm`` when ``hc_mm`` and an interval are known."""
    interval = calibration.interval(hc_mm, features) if hc_mm else None
    if interval is None:
        return features
    return {**features, "interval_halfwidth_mm": 0.5 * (interval[1] - interval[0])}


@dataclass(frozen=True)
class TrustAssessment:
    """What the trust step says of one measured HC: its features, the interval (mm; None
    without a calibrated quantile) and the review reasons (empty: no review needed)."""

    features: Mapping[str, float]
    interval_mm: tuple[float, float] | None
    reasons: tuple[str, ...]


def assess_head(head, gray: np.ndarray | None, hc_mm: float, calibration: TrustCalibration,
                ellipse_mm: Ellipse | None = None) -> TrustAssessment:
    """Features, interval and review reasons of a measured head (``HeadMeasurement`` with an
    ellipse) whose HC is ``hc_mm`` (``ellipse_mm``: the head in mm, for non-square pixels)."""
    features = trust_features(head, gray, hc_mm, ellipse_mm)
    return TrustAssessment(features, calibration.interval(hc_mm, features),
                           tuple(calibration.review_reasons(features, hc_mm)))
