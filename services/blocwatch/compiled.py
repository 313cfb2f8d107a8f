"""The modules compiled to C with mypyc at install time, and whether each still matches its source.

The tagger and the story index do most of the processor's per-item work in plain Python loops;
mypyc compiles those (fully annotated) modules into extension modules that Python imports in
place of the .py files. The build (setup.py) writes the SHA-256 of every source it compiled to
`compiled.json`; a compiled module whose source changed since is stale: Python would run the old
code silently, so the CLI and the test suite refuse to start until it is rebuilt.

`BLOCWATCH_PURE_PYTHON=1` at install time skips compiling; everything then runs as plain Python.
This module imports nothing of blocwatch: setup.py loads it before the package is installed.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

__all__ = [
    "COMPILED",
    "DIGESTS_FILE",
    "REBUILD",
    "load_source",
    "source_digest",
    "source_path",
    "stale_modules",
    "status",
    "write_digests",
]

# Module names, relative to the blocwatch package. Only modules with no pydantic model classes
# (mypyc cannot compile those) and whose hot paths are Python loops.
COMPILED = (
    "processor.tagging.tagger",
    "processor.tagging.gazetteer",
    "processor.tagging.prefilter",
    "processor.tagging.ruleset",
    "processor.stories",
)
DIGESTS_FILE = "compiled.json"
REBUILD = (
    "rebuild it: `make install` (or `pip install -e .`); BLOCWATCH_PURE_PYTHON=1 skips compiling"
)
_PACKAGE = Path(__file__).resolve().parent


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_path(module: str, package: Path = _PACKAGE) -> Path:
    """The .py file of `module` (a name relative to the blocwatch package)."""
    return package.joinpath(*module.split(".")).with_suffix(".py")


def _extensions(source: Path) -> list[Path]:
    """The extension files Python would import for `source` (they win over the .py file)."""
    stem = source.with_suffix("")
    return [
        Path(f"{stem}{suffix}")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if Path(f"{stem}{suffix}").exists()
    ]


def write_digests(modules: Iterable[str] = COMPILED, package: Path = _PACKAGE) -> Path:
    """Record the digest of every source about to be compiled (called by setup.py)."""
    digests = {module: source_digest(source_path(module, package)) for module in modules}
    target = package / DIGESTS_FILE
    target.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def status(modules: Iterable[str] = COMPILED, package: Path = _PACKAGE) -> dict[str, str]:
    """'compiled', 'pure' (no extension: runs the .py) or 'stale' for each module."""
    try:
        recorded = json.loads((package / DIGESTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    found = {}
    for module in modules:
        source = source_path(module, package)
        if not _extensions(source):
            found[module] = "pure"
        elif source.exists() and recorded.get(module) != source_digest(source):
            found[module] = "stale"
        else:  # no source beside it (an installed wheel may omit it): nothing to compare
            found[module] = "compiled"
    return found


def stale_modules(package: Path = _PACKAGE) -> list[str]:
    """Compiled modules whose source changed after they were built."""
    return [name for name, state in status(package=package).items() if state == "stale"]


def load_source(module: str) -> ModuleType:
    """The plain-Python version of a compiled module, under its own name (for comparisons)."""
    alias = f"blocwatch.{module}__source"
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, source_path(module))
    if spec is None or spec.loader is None:
        raise ImportError(f"no source for blocwatch.{module}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[alias] = loaded  # dataclasses look their module up while it executes
    spec.loader.exec_module(loaded)
    return loaded
