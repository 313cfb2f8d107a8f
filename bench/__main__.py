"""`python -m bench`: run every `bench/bench_*.py` module and print one summary table.

Each module runs in its own process (`python -m bench --child NAME OUT`), so one benchmark's
memory never counts against the next and the peak RSS of each is known. Modules return a list of
`bench.results.Measurement` from `main()`; a module that returns nothing is reported as such, a
missing one (e.g. `bench_pipeline` before `blocwatch up` is merged) is named in the notes.

    python -m bench                       # everything, summary table at the end
    python -m bench --only bench_tagging  # some modules
    python -m bench --write-readme        # also regenerate README.md's `## Performance` table
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench
from bench.results import Measurement, dump, load, markdown_table, replace_section, text_table

REPO = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 20 * 60
P99_GOAL_S = 1.0
# Service memory read from the process that ran each in-process benchmark (Linux ru_maxrss).
PROCESS_RSS = {
    "bench_collector": "collector: peak RSS, 1,000 feeds x 20 items in one process",
    "bench_alerter": "alerter: peak RSS, engine + SQLite state after 20,000 items",
}


def _modules() -> list[str]:
    found = pkgutil.iter_modules(bench.__path__)
    return sorted(m.name for m in found if m.name.startswith("bench_"))


def _child(name: str, out: Path) -> int:
    module = importlib.import_module(f"bench.{name}")
    sys.argv = [name]  # modules that read sys.argv see their defaults
    results = module.main()
    if isinstance(results, list) and all(isinstance(r, Measurement) for r in results):
        dump(results, out)
    return 0


def _run(name: str, notes: list[str]) -> list[Measurement]:
    print(f"== {name}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "results.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench", "--child", name, str(out)], cwd=REPO
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except KeyboardInterrupt:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            notes.append(f"`{name}` failed (exit code {process.returncode}); see its output")
            return []
        if not out.exists():
            notes.append(f"`{name}` ran but returned no machine-readable results (see output)")
            return []
        measurements = load(out)
    if name in PROCESS_RSS:
        measurements.append(Measurement("memory", PROCESS_RSS[name], usage.ru_maxrss / 1024, "MB"))
    return measurements


def _missing_pipeline(notes: list[str]) -> list[Measurement]:
    notes.append(
        "`bench/bench_pipeline.py` (end-to-end latency at 100 and 500 items/s, RSS under load) "
        "is not on this branch yet: it comes with `blocwatch up`"
    )
    return [
        Measurement(
            "pipeline",
            f"news.raw → alert p99 at {rate} items/s",
            float("nan"),
            "s",
            P99_GOAL_S,
            higher_is_better=False,
        )
        for rate in (100, 500)
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", metavar="MODULE", help="run only these modules")
    parser.add_argument(
        "--write-readme", action="store_true", help="regenerate README.md's Performance table"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODULE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], Path(args.child[1]))
    names = args.only or _modules()
    measurements: list[Measurement] = []
    notes: list[str] = []
    for name in names:
        measurements += _run(name, notes)
    if "bench_pipeline" not in _modules() and not args.only:
        measurements += _missing_pipeline(notes)
    measurements.sort(key=lambda m: (m.area == "memory", m.area))
    print("\n== summary\n" + text_table(measurements))
    for note in notes:
        print(f"note: {note}")
    if args.write_readme:
        readme = REPO / "README.md"
        section = markdown_table(measurements, notes)
        readme.write_text(replace_section(readme.read_text(encoding="utf-8"), section))
        print(f"wrote the Performance section of {readme}")
    return 0


sys.exit(main(sys.argv[1:]))
