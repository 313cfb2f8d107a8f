"""`blocwatch tag` / `blocwatch eval` and the scoring, plus the F1 floors on ../shared/eval."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from blocwatch.cli import main
from blocwatch.core.errors import ConfigError
from blocwatch.processor.tagging import tag_fields
from blocwatch.processor.tagging.evaluation import Example, load_examples, parse_example, score
from blocwatch.processor.tagging.tagger import _data, build_tagger

ESCALATION_F1_FLOOR = 0.85
ALLIANCE_F1_FLOOR = 0.80


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_tag_file_keeps_order_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "text": "Iran test-fired a ballistic missile."})
        + "\nnot json\n"
        + json.dumps(
            {"id": "b", "title": "Pact signed", "summary": "Oslo and Rome signed a defence pact."}
        )
        + "\n"
        + json.dumps({"id": "c"})
        + "\n\n"
        + json.dumps({"id": 4, "text": "The home team won the final."})
        + "\n",
        encoding="utf-8",
    )
    assert main(["tag", str(source)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row.get("id", row.get("line")) for row in rows] == ["a", 2, "b", 4, 4]
    assert rows[0]["tags"][0]["label"] == "escalation"
    assert set(rows[0]["tags"][0]) == {
        "label",
        "subtype",
        "cameo",
        "plover",
        "intensity",
        "confidence",
        "evidence",
    }
    assert rows[0]["actors"][0]["code"] == "IRN"
    assert "line 2" in rows[1]["error"]
    assert rows[2]["tags"][0]["evidence"][0]["field"] == "summary"
    assert "line 4" in rows[3]["error"]
    assert "text" in rows[3]["error"]
    assert rows[4] == {"id": 4, "tags": [], "actors": [], "dyads": [], "regions": []}


def test_tag_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"id": 1, "text": "Sanctions hit."})))
    assert main(["tag", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"][0]["subtype"] == "sanction"


def test_tag_text_explains_tags_and_what_was_not_tagged(capsys: pytest.CaptureFixture[str]) -> None:
    text = "Seoul denied plans to sign a defence pact, and the North threatened strikes."
    assert main(["tag", "--text", text]) == 0
    out = capsys.readouterr().out
    assert "ESCALATION threat" in out
    assert "escalation.threat.verb" in out
    assert "not tagged:" in out
    assert "negation 'denied'" in out
    assert "actors: KOR" in out


def test_tag_missing_file_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "/nonexistent/items.jsonl"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_score_counts_each_label_and_the_confusion_table() -> None:
    examples = [
        Example("1", "a", "", frozenset({"alliance"})),
        Example("2", "b", "", frozenset({"escalation"})),
        Example("3", "c", "", frozenset()),
        Example("4", "d", "", frozenset({"alliance", "escalation"})),
    ]
    predicted = {
        "1": frozenset({"alliance", "escalation"}),
        "2": frozenset({"escalation"}),
        "3": frozenset({"escalation"}),
        "4": frozenset({"escalation"}),
    }
    report = score(examples, lambda e: (predicted[e.id], []))
    alliance, escalation = report.scores["alliance"], report.scores["escalation"]
    assert (alliance.tp, alliance.fp, alliance.fn) == (1, 0, 1)
    assert (escalation.tp, escalation.fp, escalation.fn) == (2, 2, 0)
    assert escalation.precision == 0.5
    assert escalation.recall == 1.0
    assert report.confusion["alliance"]["both"] == 1
    assert report.confusion["both"]["escalation"] == 1
    assert len(report.errors) == 3


@pytest.mark.parametrize(
    ("line", "gold"),
    [
        ('{"id": "x", "text": "t", "label": "neither"}', frozenset()),
        ('{"id": "x", "text": "t", "label": "alliance"}', frozenset({"alliance"})),
        ('{"id": "x", "text": "t", "labels": []}', frozenset()),
        (
            '{"id": "x", "title": "t", "labels": ["alliance", "escalation"]}',
            frozenset({"alliance", "escalation"}),
        ),
    ],
)
def test_both_label_formats(line: str, gold: frozenset[str]) -> None:
    assert parse_example(line, 1).gold == gold


@pytest.mark.parametrize(
    "line",
    ["nope", "[1]", '{"text": "t"}', '{"text": "t", "label": "war"}', '{"label": "neither"}'],
)
def test_bad_labelled_lines_name_the_line(line: str) -> None:
    with pytest.raises(ConfigError, match="line 7"):
        parse_example(line, 7)


def test_eval_command_both_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    single = _write(
        tmp_path / "single.jsonl",
        [
            {"id": "1", "text": "Russia and Belarus signed a defence pact.", "label": "alliance"},
            {"id": "2", "text": "Troops shelled the town.", "label": "escalation"},
            {"id": "3", "text": "The minister met his counterpart.", "label": "neither"},
            {
                "id": "4",
                "text": "Police arrested a smuggler after a robbery.",
                "label": "escalation",
            },
        ],
    )
    assert main(["eval", str(single), "--show-errors"]) == 0
    out = capsys.readouterr().out
    assert "escalation       1.000   0.500   0.667        2" in out
    assert "misclassified (1):" in out
    assert "- 4: gold escalation, predicted neither" in out
    multi = _write(
        tmp_path / "multi.jsonl",
        [
            {
                "id": "m",
                "text": "Russia and China began joint naval drills.",
                "labels": ["alliance", "escalation"],
            }
        ],
    )
    assert main(["eval", str(multi), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"]["alliance"]["f1"] == 1.0
    assert report["confusion"]["both"]["both"] == 1


def test_broken_dictionaries_name_file_and_entry() -> None:
    rules = _data("rules.yaml")
    assert isinstance(rules, dict)
    rules["rules"][0]["tags"][0]["cameo"] = "x1"
    with pytest.raises(ConfigError, match=r"rules.yaml: rules.0.tags.0.cameo: String should match"):
        build_tagger(rules, _data("actors.yaml"), _data("regions.yaml"), "test")
    actors = yaml.safe_load("states: {AAA: {name: Atlantis}, BBB: {name: Atlantis}}")
    with pytest.raises(ConfigError, match="Atlantis"):
        build_tagger(_data("rules.yaml"), actors, {"regions": {}}, "test")


# ---------------------------------------------------------------------- shared data (../shared)
def _f1(path: Path) -> dict[str, float]:
    from blocwatch.processor.tagging import default_tagger

    tagger = default_tagger()
    report = score(
        load_examples(path),
        lambda e: (
            frozenset(
                t.label for t in tagger.tag([("title", e.title), ("summary", e.summary)]).tags
            ),
            [],
        ),
    )
    return {label: s.f1 for label, s in report.scores.items()}


def test_dev_set_meets_the_f1_floors(shared_dir: Path) -> None:
    f1 = _f1(shared_dir / "eval" / "dev.jsonl")
    assert f1["escalation"] >= ESCALATION_F1_FLOOR, f1
    assert f1["alliance"] >= ALLIANCE_F1_FLOOR, f1


def test_modern_dev_set_meets_the_f1_floors(shared_dir: Path) -> None:
    f1 = _f1(shared_dir / "eval" / "modern_dev.jsonl")
    assert f1["escalation"] >= ESCALATION_F1_FLOOR, f1
    assert f1["alliance"] >= ALLIANCE_F1_FLOOR, f1


@pytest.mark.parametrize(
    ("prefix", "labels", "subtypes"),
    [
        ("000_", {"alliance"}, {"defence_pact", "strategic_partnership"}),
        ("003_", {"alliance", "escalation"}, {"weapons_test", "exercise"}),
    ],
)
def test_seed_documents(
    shared_dir: Path, prefix: str, labels: set[str], subtypes: set[str]
) -> None:
    (path,) = (shared_dir / "seeds").glob(prefix + "*.txt")
    title, _, body = path.read_text(encoding="utf-8").partition("\n")
    tagging = tag_fields([("title", title), ("summary", body)])
    assert labels <= {t.label for t in tagging.tags}
    assert subtypes <= {t.subtype for t in tagging.tags}
