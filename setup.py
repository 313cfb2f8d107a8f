"""Build hook: compiles the processor's hot modules (blocwatch.compiled.COMPILED) with mypyc.

Everything else about the package is in pyproject.toml. Set BLOCWATCH_PURE_PYTHON=1 to install
without compiling (no C compiler needed; the same code runs, slower).
"""

import importlib.util
import os
from pathlib import Path

from setuptools import setup

PACKAGE = Path(__file__).resolve().parent / "services" / "blocwatch"


def _compiled_module():  # blocwatch itself is not importable before it is installed
    spec = importlib.util.spec_from_file_location("_blocwatch_compiled", PACKAGE / "compiled.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ext_modules():
    compiled = _compiled_module()
    digests = PACKAGE / compiled.DIGESTS_FILE
    if os.environ.get("BLOCWATCH_PURE_PYTHON", "").strip() not in ("", "0"):
        # leftovers of an earlier compiled build in the source tree would still be imported
        for name in compiled.COMPILED:
            source = compiled.source_path(name)
            for leftover in source.parent.glob(f"{source.stem}*.so"):  # with its __mypyc lib
                leftover.unlink()
        digests.unlink(missing_ok=True)
        return []
    from mypyc.build import mypycify

    compiled.write_digests()
    sources = [str(compiled.source_path(name)) for name in compiled.COMPILED]
    # separate: one extension per module, each beside its source (editable installs import them
    # from the source tree; one shared library would need a top-level module of its own)
    return mypycify(sources, opt_level="3", separate=True)


setup(ext_modules=ext_modules())
