"""Heads: calibrated multinomial logistic regressions from picture features to one attribute's values.

Pure computation, arrays in and out, no database: ``head_train`` fits a head on a feature matrix and its
labels (scikit-learn, training only); ``Head.probabilities`` serves it with numpy alone from the stored
arrays (standardisation, coefficients, a temperature). A head is stored as JSON (``Head.to_dict``): arrays
as base64 little-endian float32, never a pickle.

Calibration: the logits are divided by a temperature fitted on out-of-fold predictions (the model never saw
those pictures), minimising the negative log-likelihood. ``calibration_report`` gives the expected
calibration error and a reliability table on a test split: a score of 0.9 should be right 9 times in 10.

Feature sets name the columns a head reads from the full feature vector (``FEATURE_SETS``), so candidates
can differ by feature set and regularisation while sharing one cached vector per picture.
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from classification.embedding import EMBEDDING_DIM
from classification.features import BUILTIN_DIM

FEATURE_SETS: dict[str, tuple[int, int]] = {
    "embedding+builtin": (0, EMBEDDING_DIM + BUILTIN_DIM),
    "embedding": (0, EMBEDDING_DIM),
    "builtin": (EMBEDDING_DIM, EMBEDDING_DIM + BUILTIN_DIM),
}
FEATURE_DIM = EMBEDDING_DIM + BUILTIN_DIM


def _encode(array: np.ndarray) -> dict:
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(data.shape), "float32": base64.b64encode(data.tobytes()).decode("ascii")}


def _decode(blob: dict) -> np.ndarray:
    raw = base64.b64decode(blob["float32"], validate=True)
    shape = tuple(int(n) for n in blob["shape"])
    array = np.frombuffer(raw, dtype="<f4")
    if array.size != int(np.prod(shape)):
        raise ValueError(f"a stored array of shape {shape} has {array.size} values")
    return array.reshape(shape).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Head:
    """One attribute's classifier over a feature set. ``coef`` is classes x features, on standardised input."""

    attribute: str
    classes: tuple[str, ...]
    feature_set: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float = 1.0
    metrics: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        start, stop = FEATURE_SETS[self.feature_set]
        width = stop - start
        if self.mean.shape != (width,) or self.scale.shape != (width,) or self.coef.shape != (len(self.classes), width):
            raise ValueError(f"head for {self.attribute}: array shapes do not match feature set {self.feature_set}")
        if self.intercept.shape != (len(self.classes),) or not self.temperature > 0:
            raise ValueError(f"head for {self.attribute}: bad intercept or temperature")

    def logits(self, features: np.ndarray) -> np.ndarray:
        start, stop = FEATURE_SETS[self.feature_set]
        x = (np.asarray(features, dtype=np.float32)[:, start:stop] - self.mean) / self.scale
        return x @ self.coef.T + self.intercept

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, N x classes, for full feature vectors (N x FEATURE_DIM)."""
        return softmax(self.logits(features) / self.temperature)

    def predict(self, features: np.ndarray) -> list[tuple[str, float]]:
        """(value, calibrated probability) per row."""
        p = self.probabilities(features)
        best = p.argmax(axis=1)
        return [(self.classes[i], float(p[row, i])) for row, i in enumerate(best)]

    def to_dict(self) -> dict:
        return {
            "attribute": self.attribute,
            "classes": list(self.classes),
            "feature_set": self.feature_set,
            "mean": _encode(self.mean),
            "scale": _encode(self.scale),
            "coef": _encode(self.coef),
            "intercept": _encode(self.intercept),
            "temperature": float(self.temperature),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Head:
        if data.get("feature_set") not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {data.get('feature_set')!r}")
        return cls(
            attribute=str(data["attribute"]),
            classes=tuple(str(c) for c in data["classes"]),
            feature_set=data["feature_set"],
            mean=_decode(data["mean"]),
            scale=_decode(data["scale"]),
            coef=_decode(data["coef"]),
            intercept=_decode(data["intercept"]),
            temperature=float(data.get("temperature", 1.0)),
            metrics=dict(data.get("metrics", {})),
        )


def _fit(x: np.ndarray, y: np.ndarray, *, c: float, n_classes: int):
    """Standardise and fit; returns mean, scale, coef (classes x d), intercept (classes)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(C=c, max_iter=2000, tol=1e-5)
    model.fit((x - mean) / scale, y)
    coef = np.zeros((n_classes, x.shape[1]), np.float64)
    intercept = np.zeros(n_classes, np.float64)
    if n_classes == 2:  # sklearn gives one row w for P(class 1) = sigmoid(w.x + b): softmax of (0, w.x + b)
        coef[1], intercept[1] = model.coef_[0], model.intercept_[0]
    else:
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
        missing = np.setdiff1d(np.arange(n_classes), model.classes_)
        intercept[missing] = -1e3  # a class absent from this fold is never predicted by it
    return mean, scale, coef, intercept


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of out-of-fold logits."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    result = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(result.x))


def head_train(
    *,
    attribute: str,
    features: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    feature_set: str = "embedding+builtin",
    c: float = 1.0,
    folds: int = 5,
    seed: int = 0,
) -> Head:
    """Fit a calibrated head on full feature vectors (N x FEATURE_DIM) and their labels.

    ``classes`` fixes the order of the values (default: the labels seen, sorted); at least two must occur.
    The temperature is fitted on out-of-fold logits (stratified ``folds``-fold; their accuracy and ECE go
    to ``metrics["out_of_fold"]``), then the head is refitted on everything. When no out-of-fold prediction
    is wrong the temperature stays 1 (nothing to calibrate on: the fit would sharpen without bound).
    Raises ValueError on unusable input.
    """
    from sklearn.model_selection import StratifiedKFold

    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; expected one of {', '.join(FEATURE_SETS)}")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM or len(features) != len(labels):
        raise ValueError(f"expected {len(labels)} x {FEATURE_DIM} features, got {features.shape}")
    classes = tuple(classes) if classes is not None else tuple(sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels not among the classes: {', '.join(unknown)}")
    y = np.array([index[label] for label in labels])
    present, counts = np.unique(y, return_counts=True)
    if len(present) < 2:
        raise ValueError(f"a head for {attribute} needs labels of at least two values")
    start, stop = FEATURE_SETS[feature_set]
    x = features[:, start:stop]

    k = int(min(folds, counts.min()))
    temperature = 1.0
    metrics: dict = {"train_size": len(y), "c": c, "folds": k}
    if k >= 2:
        oof = np.zeros((len(y), len(classes)))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        for train, held in splitter.split(x, y):
            mean, scale, coef, intercept = _fit(x[train], y[train], c=c, n_classes=len(classes))
            oof[held] = ((x[held] - mean) / scale) @ coef.T + intercept
        oof, oof_truth = (oof[:, present], _remap(y, present)) if len(present) < len(classes) else (oof, y)
        if (oof.argmax(axis=1) == oof_truth).all():
            # No out-of-fold mistake: the likelihood keeps rising as the temperature falls, so there is no
            # calibration to estimate; the regularised fit's own scale is kept.
            metrics["temperature"] = "not fitted: no out-of-fold error"
        else:
            temperature = _fit_temperature(oof, oof_truth)
        report = calibration_report(softmax(oof / temperature), oof_truth)
        metrics["out_of_fold"] = {"accuracy": report["accuracy"], "ece": report["ece"]}
    mean, scale, coef, intercept = _fit(x, y, c=c, n_classes=len(classes))
    return Head(
        attribute=attribute,
        classes=classes,
        feature_set=feature_set,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        coef=coef.astype(np.float32),
        intercept=intercept.astype(np.float32),
        temperature=temperature,
        metrics=metrics,
    )


def _remap(y: np.ndarray, present: np.ndarray) -> np.ndarray:
    lookup = {int(v): i for i, v in enumerate(present)}
    return np.array([lookup[int(v)] for v in y])


def calibration_report(probabilities: np.ndarray, truth: np.ndarray, *, bins: int = 10) -> dict:
    """Expected calibration error of the top score, with the reliability table behind it.

    ``truth`` holds class indices. Each row of the table is a confidence bin: how many pictures, their mean
    top score and how often that top value was right; ECE is the count-weighted mean |confidence - accuracy|.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = []
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high) if low > 0 else (confidence <= high)
        n = int(inside.sum())
        if not n:
            continue
        mean_conf, accuracy = float(confidence[inside].mean()), float(correct[inside].mean())
        ece += n / len(truth) * abs(mean_conf - accuracy)
        bin_edges = [round(float(low), 2), round(float(high), 2)]
        table.append({"bin": bin_edges, "n": n, "confidence": mean_conf, "accuracy": accuracy})
    return {"ece": ece, "n": len(truth), "accuracy": float(correct.mean()) if len(truth) else 0.0, "table": table}


def confusion_matrix(truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]) -> dict:
    """{true value: {predicted value: count}}; a missing prediction is counted under "none"."""
    matrix = {t: {p: 0 for p in (*classes, "none")} for t in classes}
    for t, p in zip(truth, predicted, strict=True):
        matrix[t][p if p in matrix[t] else "none"] += 1
    return matrix


def head_evaluate(head: Head, *, features: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, per-class recall, confusion matrix and calibration of a head on a test split."""
    index = {c: i for i, c in enumerate(head.classes)}
    keep = [i for i, label in enumerate(labels) if label in index]
    labels = [labels[i] for i in keep]
    probabilities = head.probabilities(np.asarray(features)[keep])
    predicted = [head.classes[i] for i in probabilities.argmax(axis=1)]
    truth = np.array([index[label] for label in labels])
    report = calibration_report(probabilities, truth)
    hits = Counter(t for p, t in zip(predicted, labels, strict=True) if p == t)
    totals = Counter(labels)
    per_class = {c: hits[c] / totals[c] if totals[c] else None for c in head.classes}
    return {
        "accuracy": report["accuracy"],
        "n": len(labels),
        "per_class": per_class,
        "confusion": confusion_matrix(labels, predicted, head.classes),
        "ece": report["ece"],
        "reliability": report["table"],
    }
