"""The scanner catalog: entries by id, declared formats, its own input error, no cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from registry.errors import InputError
from registry.scanners import catalog
from registry.scanners.backdoor import BackdoorScanner
from registry.scanners.base import ScanLimits, Verdict
from registry.scanners.errors import ScanInputError
from registry.scanners.runner import LocalFile, local_targets, scan_targets
from registry.service.scan import select_scanners

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "assets" / "corpus"


def test_default_set_ids_and_order_unchanged() -> None:
    files, folders = catalog.all_scanners()
    assert [s.id for s in files] == [
        "pickle",
        "safetensors",
        "gguf",
        "keras",
        "onnx",
        "chat-template",
        "tensorflow",
        "nemo",
        "skops",
        "torchscript",
        "unsupported-formats",
        "hydra-config",
    ]
    assert [s.id for s in folders] == ["model-folder"]
    assert catalog.OPT_IN == ("backdoor",)
    assert catalog.known_ids() == sorted([*catalog.OPT_IN, "model-folder", *(s.id for s in files)])


def test_each_file_scanner_declares_its_format() -> None:
    # What admission used to read from a table in the service (`_FORMAT_BY_SCANNER`).
    formats = {e.id: catalog.format_of(e.id) for e in catalog.FILE_SCANNERS}
    # unsupported-formats recognises many formats and claims none: files keep another
    # scanner's format, or their suffix.
    assert formats.pop("unsupported-formats") is None
    assert formats.pop("hydra-config") is None  # YAML / JSON keep their suffix
    assert formats == {
        "pickle": "pickle",
        "safetensors": "safetensors",
        "gguf": "gguf",
        "keras": "keras",
        "onnx": "onnx",
        # Templates live in JSON and Jinja files, which stay `json` / `jinja` to policies.
        "chat-template": None,
        "tensorflow": "tensorflow",
        "nemo": "nemo",
        "skops": "skops",
        "torchscript": "torchscript",
    }

    assert catalog.format_of("unsupported-formats") is None
    assert catalog.format_of("model-folder") is None
    assert catalog.format_of("backdoor") is None
    assert catalog.format_of("no-such-scanner") is None


def test_unknown_scanner_is_the_scanners_own_error_translated_at_the_boundary() -> None:
    known = "unknown scanner nope; known: backdoor, chat-template, gguf"
    with pytest.raises(ScanInputError, match=known):
        catalog.select(("pickle", "nope"))
    assert not issubclass(ScanInputError, InputError)  # the library knows nothing of registry
    with pytest.raises(InputError, match=known) as caught:
        select_scanners(("nope",))
    assert isinstance(caught.value.__cause__, ScanInputError)


def test_select_keeps_catalog_order_and_builds_the_opt_in_scanner() -> None:
    files, folders = catalog.select(("onnx", "backdoor", "pickle"))
    assert [s.id for s in files] == ["pickle", "onnx"]
    (chosen,) = folders
    assert isinstance(chosen, BackdoorScanner)
    # The backdoor scanner is handed the serialization check; it never runs the catalog itself.
    assert chosen.serialization_check is catalog.serialization_verdict


def test_serialization_verdict_is_the_default_sets(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(CORPUS / "safetensors" / "valid.safetensors", clean / "model.safetensors")
    targets, _ = local_targets(clean)
    assert catalog.serialization_verdict(targets, ScanLimits()) is Verdict.CLEAN
    shutil.copy(CORPUS / "pickle" / "os_system_global_reduce_p0.pkl", clean / "args.bin")
    targets, _ = local_targets(clean)
    assert catalog.serialization_verdict(targets, ScanLimits()) is Verdict.MALICIOUS


def test_the_scanners_import_nothing_else_of_registry() -> None:
    """At run time too (import-linter checks the static graph): importing the whole catalog
    loads no other part of registry, no policies, no CLI and no framework."""
    script = (
        "import sys\nimport registry.scanners.catalog\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('policies', 'cli', 'sqlalchemy', 'fastapi', 'typer', 'huggingface_hub') or "
        "(m.startswith('registry.') and not m.startswith('registry.scanners'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- the lazy catalog: declared identities, and cheap checks that never hide a file ---------


@pytest.mark.parametrize(
    "entry", [*catalog.FILE_SCANNERS, *catalog.FOLDER_SCANNERS], ids=lambda e: e.id
)
def test_each_entry_declares_its_scanners_own_identity(entry: catalog.Entry) -> None:
    scanner = entry.build(catalog.ScannerOptions())
    assert (scanner.id, scanner.version, scanner.ruleset_version) == (
        entry.id,
        entry.version,
        entry.ruleset_version,
    )


_ASSET_FILES = sorted(p for p in (ROOT / "tests" / "assets").rglob("*") if p.is_file())


def test_may_apply_never_says_no_where_the_scanner_says_yes() -> None:
    """Every file the tests keep (the corpus, the format samples, the signing fixtures): where a
    scanner claims a file, its entry's cheap check must let the catalog import it."""
    options = catalog.ScannerOptions()
    real = [(e, e.build(options)) for e in catalog.FILE_SCANNERS]
    claimed: dict[str, int] = {}
    for path in _ASSET_FILES:
        for name in (path.relative_to(ROOT).as_posix(), path.name):
            target = LocalFile(name, path, path.stat().st_size)
            for entry, scanner in real:
                if scanner.applies_to(target):
                    claimed[entry.id] = claimed.get(entry.id, 0) + 1
                    assert entry.may_apply(target), (entry.id, name)
    # The check saw every kind of file: each scanner claimed some sample.
    assert set(claimed) == {e.id for e in catalog.FILE_SCANNERS}, claimed


def test_a_lazy_scanner_reports_what_the_scanner_reports() -> None:
    targets, _ = local_targets(CORPUS)
    files, folders = catalog.all_scanners()
    options = catalog.ScannerOptions()
    eager = [e.build(options) for e in catalog.FILE_SCANNERS]
    eager_folders = [e.build(options) for e in catalog.FOLDER_SCANNERS if not e.opt_in]
    lazy = scan_targets(targets, files, folders, workers=1).to_json()
    built = scan_targets(targets, eager, eager_folders, workers=1).to_json()
    lazy.pop("seconds")
    built.pop("seconds")
    assert lazy == built
