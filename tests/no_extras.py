"""Run modelctl as a plain `pip install .` would have it: no extras, only declared dependencies.

A real fresh virtualenv would need the package index (or a wheel cache) to install the
dependencies, and the tests run offline. So this simulates one inside the shared environment:
from `pyproject.toml`'s `[project].dependencies` it walks the installed distributions' own
requirements (their markers evaluated, requested extras followed) to the set a no-extras
install would bring, and in a child interpreter makes every other third-party top-level module
unimportable (sigstore, torch, transformers, model_signing, numpy, pytest, ...), as if absent.

The blocker is a `sys.meta_path` finder placed first that raises `ModuleNotFoundError` for a
blocked name, the error a missing package gives. One difference from a real absence:
`importlib.util.find_spec(blocked)` raises instead of returning None; nothing on the paths
tested here asks that way.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = frozenset({"attestations", "policies", "registry", "cli", "tests"})


def declared_distributions() -> frozenset[str]:
    """Canonical names of every distribution a no-extras install of modelctl brings."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    found: set[str] = {"modelctl"}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here, so there is nothing of it to block either
        extras = ("", *sorted(requirement.extras))
        for text in requires:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append(child)
    return frozenset(found)


def undeclared_modules() -> list[str]:
    """Top-level modules installed here that only undeclared distributions provide."""
    declared = declared_distributions()
    blocked = [
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if module not in OUR_PACKAGES
        and not module.startswith("__editable__")
        and not any(canonicalize_name(owner) in declared for owner in owners)
    ]
    return sorted(blocked)


# Runs in the child: argv[1] is the JSON list of blocked modules, argv[2] what to run.
_CHILD = r"""
import importlib.abc, json, sys

blocked = frozenset(json.loads(sys.argv[1]))


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
for loaded in [m for m in sys.modules if m.partition(".")[0] in blocked]:
    del sys.modules[loaded]  # imported at start-up by a .pth file (setuptools' distutils hack)

if sys.argv[2] == "import-all":
    import pkgutil

    failures = {}
    for package in ("attestations", "policies", "registry", "cli"):
        root = __import__(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
            try:
                __import__(info.name)
            except ImportError as exc:
                failures[info.name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(failures))
else:
    from cli.main import main

    main(sys.argv[2:])
"""


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def run_without_extras(*args: str, home: Path) -> Run:
    """`modelctl ARGS` (or `import-all`: import every module) with the undeclared parts absent."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MODELCTL_HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(undeclared_modules()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return Run(done.returncode, done.stdout, done.stderr)
