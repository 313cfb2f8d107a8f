"""`blocwatch tag` and `blocwatch eval`: the tagger for people and for evaluation.

The output formats are an interface (an external evaluation reads them): keep them stable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from blocwatch.core.errors import ConfigError
from blocwatch.processor.tagging import default_tagger
from blocwatch.processor.tagging.evaluation import Example, format_report, load_examples, score
from blocwatch.processor.tagging.tagger import FieldName, Tagger, Tagging, Trigger

__all__ = ["explain", "register", "tag_lines", "tagging_json"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tag = subparsers.add_parser(
        "tag",
        help="tag JSON lines (or one --text) as alliance/escalation with evidence",
        description=(
            "Reads JSON lines with `id` and `text` (or `title`/`summary`) from FILE or - (stdin) "
            "and writes one JSON line per input, in order: "
            '{"id", "tags": [{"label", "subtype", "cameo", "plover", "intensity", "confidence", '
            '"evidence"}], "actors", "dyads", "regions"}. A bad line gives {"line", "error"}. '
            "With --text, prints a readable explanation instead."
        ),
    )
    source = tag.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="JSONL file, or - for stdin")
    source.add_argument("--text", help="explain the tagging of this one text")
    tag.set_defaults(run=_run_tag)

    evaluate = subparsers.add_parser(
        "eval",
        help="score the tagger on labelled JSON lines (precision, recall, F1, confusion)",
        description=(
            "FILE holds JSON lines with `text` and either `label` (alliance, escalation or "
            "neither) or `labels` (a list: [], [alliance], [escalation] or both)."
        ),
    )
    evaluate.add_argument("file", type=Path, help="labelled JSONL file")
    evaluate.add_argument(
        "--show-errors", action="store_true", help="list misclassified items and why"
    )
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(run=_run_eval)


# ---------------------------------------------------------------------- tag
def tagging_json(item_id: object, tagging: Tagging) -> dict[str, object]:
    """The `blocwatch tag` output object of one item."""
    return {
        "id": item_id,
        "tags": [tag.model_dump(mode="json", exclude={"schema_version"}) for tag in tagging.tags],
        "actors": [a.model_dump(mode="json", exclude={"schema_version"}) for a in tagging.actors],
        "dyads": [d.model_dump(mode="json", exclude={"schema_version"}) for d in tagging.dyads],
        "regions": tagging.regions,
    }


def _fields(raw: dict[str, object]) -> list[tuple[FieldName, str]]:
    text = raw.get("text")
    if isinstance(text, str):
        return [("text", text)]
    title, summary = raw.get("title"), raw.get("summary", "")
    if isinstance(title, str) and isinstance(summary, str):
        return [("title", title), ("summary", summary)]
    raise ValueError("needs a string 'text', or 'title' (and optionally 'summary')")


def tag_lines(lines: Iterable[str], tagger: Tagger) -> Iterator[dict[str, object]]:
    """One output object per non-blank input line, in order; bad lines become error objects."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            if "id" not in raw:
                raise ValueError("missing 'id'")
            fields = _fields(raw)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            yield {"line": number, "error": f"line {number}: {exc}"}
            continue
        yield tagging_json(raw["id"], tagger.tag(fields))


def _run_tag(args: argparse.Namespace) -> int:
    tagger = default_tagger()
    if args.text is not None:
        print(explain(tagger, [("text", args.text)]))
        return 0
    stream: TextIO
    if args.file == "-":
        stream = sys.stdin
    else:
        try:
            stream = Path(args.file).open(encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ConfigError(
                f"cannot read {args.file}: {exc.strerror}", "pass a JSONL file"
            ) from exc
    try:
        out = sys.stdout
        for result in tag_lines(stream, tagger):
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    return 0


# ---------------------------------------------------------------------- explain
def _describe(trigger: Trigger) -> str:
    where = f"{trigger.field} {trigger.start}-{trigger.end}"
    return f"rule {trigger.rule.id} matched {trigger.text!r} ({where})"


def explain(tagger: Tagger, fields: Sequence[tuple[FieldName, str]]) -> str:
    """A watch officer's view: each tag with its words and rule, and what was not tagged."""
    triggers, _, _ = tagger.scan(fields)
    tagging = tagger.tag(fields)
    lines: list[str] = []
    if not tagging.tags:
        lines.append("no tags (neither alliance nor escalation)")
    for tag in tagging.tags:
        lines.append(
            f"{tag.label.upper()} {tag.subtype}: CAMEO {tag.cameo}, PLOVER {tag.plover}, "
            f"intensity {tag.intensity:+.1f}, confidence {tag.confidence:.2f}"
        )
        for ev in tag.evidence:
            lines.append(f"  rule {ev.rule} matched {ev.text!r} ({ev.field} {ev.start}-{ev.end})")
    joint = [t for t in triggers if t.joint_with and t.labels]
    for trigger in joint:
        lines.append(f"  joint action by {' and '.join(trigger.joint_with)}: {trigger.text!r}")
    not_tagged = [t for t in triggers if not t.labels]
    if not_tagged:
        lines.append("not tagged:")
        lines += [f"  {_describe(t)}: {'; '.join(t.suppressed)}" for t in not_tagged]
    if tagging.actors:
        lines.append(
            "actors: "
            + ", ".join(f"{a.code} ({a.name}, {a.kind}, {a.role})" for a in tagging.actors)
        )
    if tagging.dyads:
        lines.append(
            "dyads: " + ", ".join(f"{d.source} → {d.target} ({d.label})" for d in tagging.dyads)
        )
    if tagging.regions:
        lines.append("regions: " + ", ".join(tagging.regions))
    return "\n".join(lines)


# ---------------------------------------------------------------------- eval
def _predictor(tagger: Tagger) -> object:
    def predict(example: Example) -> tuple[frozenset[str], list[str]]:
        fields: list[tuple[FieldName, str]] = [("title", example.title)]
        if example.summary:
            fields.append(("summary", example.summary))
        triggers, _, _ = tagger.scan(fields)
        labels = frozenset(label for t in triggers for label in t.labels)
        why = [
            f"{_describe(t)}: " + (", ".join(t.labels) if t.labels else "; ".join(t.suppressed))
            for t in triggers
        ]
        return labels, why

    return predict


def _run_eval(args: argparse.Namespace) -> int:
    examples = load_examples(args.file)
    tagger = default_tagger()
    report = score(examples, _predictor(tagger))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report, str(args.file), args.show_errors))
    return 0
