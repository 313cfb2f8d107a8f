"""Scoring the tagger on labelled JSON lines: per-label precision/recall/F1 and a confusion table.

Two formats are read, line by line:
- single label (`dev.jsonl`): {"id", "text", "label": "alliance" | "escalation" | "neither"}
- multi label (`modern_dev.jsonl`): {"id", "text", "labels": [] | ["alliance", "escalation"]}
Items may give `title`/`summary` instead of `text`.

Each label is scored as its own yes/no question over all items (an item predicted with both labels
is a true positive for one and a false positive for the other when gold has one). The confusion
table puts each item in one class — neither, alliance, escalation or both — for gold and predicted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blocwatch.core.errors import ConfigError

__all__ = [
    "CLASSES",
    "LABELS",
    "EvalReport",
    "Example",
    "LabelScore",
    "format_report",
    "load_examples",
    "parse_example",
    "score",
]

LABELS = ("alliance", "escalation")
CLASSES = ("neither", "alliance", "escalation", "both")


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    title: str
    summary: str
    gold: frozenset[str]


@dataclass(frozen=True, slots=True)
class LabelScore:
    label: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn


@dataclass(frozen=True, slots=True)
class Miss:
    example: Example
    predicted: frozenset[str]
    why: tuple[str, ...]


@dataclass(frozen=True)
class EvalReport:
    items: int
    scores: dict[str, LabelScore]
    confusion: dict[str, dict[str, int]]
    errors: list[Miss] = field(default_factory=list)

    @property
    def exact_match(self) -> float:
        right = sum(self.confusion[c][c] for c in CLASSES)
        return right / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "items": self.items,
            "exact_match": round(self.exact_match, 4),
            "labels": {
                label: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "f1": round(s.f1, 4),
                    "support": s.support,
                    "tp": s.tp,
                    "fp": s.fp,
                    "fn": s.fn,
                }
                for label, s in self.scores.items()
            },
            "confusion": self.confusion,
            "errors": [
                {
                    "id": miss.example.id,
                    "gold": sorted(miss.example.gold),
                    "predicted": sorted(miss.predicted),
                    "why": list(miss.why),
                }
                for miss in self.errors
            ],
        }


def _class_of(labels: frozenset[str]) -> str:
    if len(labels) == 2:
        return "both"
    return next(iter(labels)) if labels else "neither"


def parse_example(line: str, number: int) -> Example:
    """One labelled line; ConfigError naming the line and the field when it is not usable."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"line {number}: not JSON ({exc.msg})", "one JSON object per line"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"line {number}: expected a JSON object", "one JSON object per line")
    if "labels" in raw:
        gold = raw["labels"]
        if not isinstance(gold, list) or not set(gold) <= set(LABELS):
            raise ConfigError(
                f"line {number}: 'labels' must be a list of {', '.join(LABELS)}", "fix the label"
            )
        labels = frozenset(str(g) for g in gold)
    elif "label" in raw:
        if raw["label"] not in (*LABELS, "neither"):
            raise ConfigError(
                f"line {number}: 'label' must be alliance, escalation or neither", "fix the label"
            )
        labels = frozenset() if raw["label"] == "neither" else frozenset({str(raw["label"])})
    else:
        raise ConfigError(f"line {number}: no 'label' or 'labels'", "add the gold label")
    text, title, summary = raw.get("text"), raw.get("title"), raw.get("summary", "")
    if isinstance(text, str):
        title, summary = text, ""
    if not isinstance(title, str) or not isinstance(summary, str):
        raise ConfigError(f"line {number}: needs 'text' or 'title'/'summary'", "add the text")
    return Example(str(raw.get("id", number)), title, summary, labels)


def load_examples(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", "pass a readable JSONL file"
        ) from exc
    return [parse_example(line, n) for n, line in enumerate(lines, 1) if line.strip()]


Predict = Callable[[Example], tuple[frozenset[str], Sequence[str]]]


def score(examples: Iterable[Example], predict: Predict) -> EvalReport:
    """Score predictions; `predict` returns the labels and a short why for each example."""
    counts = {label: [0, 0, 0] for label in LABELS}
    confusion = {gold: dict.fromkeys(CLASSES, 0) for gold in CLASSES}
    errors: list[Miss] = []
    total = 0
    for example in examples:
        total += 1
        predicted, why = predict(example)
        for label in LABELS:
            if label in predicted and label in example.gold:
                counts[label][0] += 1
            elif label in predicted:
                counts[label][1] += 1
            elif label in example.gold:
                counts[label][2] += 1
        confusion[_class_of(example.gold)][_class_of(predicted)] += 1
        if predicted != example.gold:
            errors.append(Miss(example, predicted, tuple(why)))
    scores = {label: LabelScore(label, *counts[label]) for label in LABELS}
    return EvalReport(total, scores, confusion, errors)


def format_report(report: EvalReport, name: str, show_errors: bool) -> str:
    lines = [f"{name}: {report.items} items, exact match {report.exact_match:.3f}", ""]
    lines.append(f"{'label':<12}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for s in report.scores.values():
        lines.append(f"{s.label:<12}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>8.3f}{s.support:>9}")
    lines += ["", "confusion (rows gold, columns predicted):"]
    lines.append(f"{'':<12}" + "".join(f"{c:>12}" for c in CLASSES))
    for gold in CLASSES:
        row = report.confusion[gold]
        if sum(row.values()):
            lines.append(f"{gold:<12}" + "".join(f"{row[c]:>12}" for c in CLASSES))
    if show_errors:
        lines += ["", f"misclassified ({len(report.errors)}):"]
        for miss in report.errors:
            text = (miss.example.title + " " + miss.example.summary).strip()
            lines.append(
                f"- {miss.example.id}: gold {_class_of(miss.example.gold)}, "
                f"predicted {_class_of(miss.predicted)}: {text[:300]}"
            )
            lines += [f"    {reason}" for reason in miss.why]
    return "\n".join(lines)
