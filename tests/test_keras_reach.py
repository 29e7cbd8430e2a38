"""Keras (issue 14, class 4): what Keras resolves where, and what rides along in a `.keras`.

* gadget and module names are reported wherever they appear, malicious where Keras resolves
  them and suspicious-low (``"resolved": false``) where it does not;
* ``tensorflow.keras.*`` modules are Keras, not an import of TensorFlow;
* archive members Keras never reads, and scripts or executables in any case of extension.

Archives are written with `zipfile` and only read by the scanner, never by Keras.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from registry.scanners.base import FileVerdict, Severity, Verdict
from registry.scanners.keras_members import judge_member
from registry.scanners.keras_names import inert_references, keras_module
from tests.test_structure_keras_onnx_folder import (
    LAMBDA_KERAS3,
    dense,
    keras_zip,
    rules,
    scan_keras,
    sequential,
    weights_h5,
)


def _findings(result: FileVerdict, rule: str) -> list[Any]:
    return [f for f in result.findings if f.rule == rule]


# --- tensorflow.keras resolves like keras -----------------------------------------------------


def _tf_keras_dense(module: str = "tensorflow.keras.layers") -> dict[str, Any]:
    layer = dense("tf_dense")
    layer["module"] = module
    layer["config"]["kernel_initializer"]["module"] = "tensorflow.keras.initializers"
    return layer


@pytest.mark.parametrize("module", ["tensorflow.keras.layers", "tensorflow.python.keras.layers"])
def test_tensorflow_keras_module_is_keras_not_a_tensorflow_import(module: str) -> None:
    result = scan_keras(keras_zip(sequential(_tf_keras_dense(module))))
    assert result.verdict is Verdict.CLEAN, result.findings


def test_tensorflow_keras_classes_still_meet_the_allowlist() -> None:
    layer = {"module": "tensorflow.keras.layers", "class_name": "Mystery", "config": {}}
    result = scan_keras(keras_zip(sequential(layer)))
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"keras.class.not-allowed"})
    gadget = {"module": "tensorflow.keras.utils", "class_name": "get_file", "config": {}}
    result = scan_keras(keras_zip(sequential(gadget)))
    assert (result.verdict, rules(result)) == (Verdict.MALICIOUS, {"keras.gadget.get-file"})


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("keras.layers", "keras.layers"),
        ("tf_keras.src.layers", "tf_keras.src.layers"),
        ("tensorflow.keras", "keras"),
        ("tensorflow.keras.layers", "keras.layers"),
        ("tensorflow.kerasx.layers", None),
        ("tensorflow.io", None),
        ("keras_hub.layers", None),
    ],
)
def test_keras_module_mapping(module: str, expected: str | None) -> None:
    assert keras_module(module) == expected


def test_tensorflow_outside_keras_is_still_dangerous() -> None:
    layer = {"module": "tensorflow.io", "class_name": "write_file", "config": {}}
    result = scan_keras(keras_zip(sequential(layer)))
    assert (result.verdict, rules(result)) == (Verdict.MALICIOUS, {"keras.module.dangerous"})


def test_builtins_module_naming_a_keras_function_is_keras() -> None:
    # How older Keras wrote built-in functions; Keras looks them up in its own modules first.
    relu = {"module": "builtins", "class_name": "function", "config": "relu"}
    result = scan_keras(keras_zip(sequential(dense("d", activation=relu))))
    assert result.verdict is Verdict.CLEAN, result.findings
    evil = {"module": "builtins", "class_name": "function", "config": "eval"}
    result = scan_keras(keras_zip(sequential(dense("d", activation=evil))))
    assert (result.verdict, rules(result)) == (Verdict.MALICIOUS, {"keras.module.dangerous"})


# --- gadget names wherever they appear --------------------------------------------------------


def test_resolved_gadget_says_so() -> None:
    gadget = {"module": "keras.utils", "class_name": "get_file", "config": {"fname": "x"}}
    (finding,) = scan_keras(keras_zip(sequential(gadget))).findings
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["resolved"] is True


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("layer-setting", "keras.utils.get_file"),
        ("layer-setting", "enable_unsafe_deserialization"),
        ("layer-setting", "keras.src.saving.saving_lib>load_model"),
        ("dict-without-config", "TFSMLayer"),
        ("compile-config", "TorchModuleWrapper"),
        ("key", "get_file"),
    ],
)
def test_gadget_names_where_keras_does_not_resolve_them_are_inert_findings(
    where: str, name: str
) -> None:
    layer = dense("d")
    model = sequential(layer)
    if where == "layer-setting":
        layer["config"]["notes"] = name
    elif where == "dict-without-config":  # Keras 3 reads a dict without `config` as data
        layer["config"]["extra"] = {"module": "keras.layers", "class_name": name}
    elif where == "compile-config":
        model["compile_config"]["metrics"] = [name]
    else:
        layer["config"]["extra"] = {name: 1}
    result = scan_keras(keras_zip(model))
    assert result.verdict is Verdict.SUSPICIOUS, result.findings
    (finding,) = _findings(result, "keras.gadget.inert")
    assert finding.severity is Severity.LOW
    assert finding.evidence["resolved"] is False
    assert finding.evidence["name"] in name


@pytest.mark.parametrize(
    "text",
    ["os.system", "subprocess.Popen", "builtins.exec", "posix", "__import__('os').system('x')"],
)
def test_module_names_anywhere_are_inert_findings(text: str) -> None:
    layer = dense("d")
    layer["config"]["notes"] = text
    result = scan_keras(keras_zip(sequential(layer)))
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"keras.module.inert"})
    assert result.findings[0].evidence["resolved"] is False


def test_metadata_json_is_read_as_data() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.10.0", "hook": "os.system"}))
        zf.writestr("config.json", json.dumps(sequential(dense("d"))))
        zf.writestr("model.weights.h5", weights_h5())
    result = scan_keras(buf.getvalue())
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"keras.module.inert"})
    assert result.findings[0].member == "metadata.json"


@pytest.mark.parametrize(
    "text",
    ["relu", "float32", "keras.layers.Dense", "tensorflow.keras.layers.Dense", "3.10.0", "input"],
)
def test_ordinary_strings_are_not_names(text: str) -> None:
    assert inert_references(text, gadgets={"get_file"}, dangerous_roots={"os", "tensorflow"}) == []


def test_vocabulary_words_are_not_module_names() -> None:
    lookup = {
        "module": "keras.layers",
        "class_name": "StringLookup",
        "config": {"name": "lookup", "vocabulary": ["os", "sys", "the"]},
    }
    assert scan_keras(keras_zip(sequential(lookup))).verdict is Verdict.CLEAN


def test_inert_findings_are_capped() -> None:
    layer = dense("d")
    layer["config"]["notes"] = [f"os.system{i}" for i in range(50)]
    result = scan_keras(keras_zip(sequential(layer)))
    inert = _findings(result, "keras.module.inert")
    assert len(inert) == 20
    (summary,) = _findings(result, "keras.name.inert")
    assert summary.evidence["count"] == 50


def test_tf_op_lambda_function_is_judged_once() -> None:
    op = {"class_name": "TFOpLambda", "config": {"name": "op", "function": "io.write_file"}}
    result = scan_keras(keras_zip(sequential(op)))
    assert rules(result) == {"keras.tf-op-lambda"}


def test_lambda_is_still_reported_once() -> None:
    result = scan_keras(keras_zip(sequential(LAMBDA_KERAS3)))
    assert rules(result) == {"keras.lambda"}


# --- members Keras never reads ----------------------------------------------------------------


def _archive(extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.10.0"}))
        zf.writestr("config.json", json.dumps(sequential(dense("d"))))
        zf.writestr("model.weights.h5", weights_h5())
        for name, data in extra.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("run.py", b"import os\n"),
        ("RUN.PY", b"import os\n"),
        ("tools/Install.Sh", b"echo hi\n"),
        ("assets/helper.BAT", b"@echo off\n"),
        ("libpayload.so.1", b"\x7fELF\x02\x01\x01"),
        ("assets/readme", b"#!/bin/sh\ntrue\n"),
        ("payload.dat", b"MZ\x90\x00"),
        ("assets/state", b"\x80\x04\x95\x05\x00"),
        ("weights.PKL", b"(dp0\n."),
    ],
)
def test_scripts_and_executables_in_any_case_are_findings(name: str, data: bytes) -> None:
    result = scan_keras(_archive({name: data}))
    assert result.verdict is Verdict.SUSPICIOUS
    (finding,) = _findings(result, "keras.zip.executable-member")
    assert finding.severity is Severity.HIGH
    assert finding.member == name


def test_members_keras_never_reads_are_low_findings() -> None:
    result = scan_keras(_archive({"notes.txt": b"hello"}))
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"keras.zip.unread-member"})
    assert result.findings[0].severity is Severity.LOW


def test_assets_and_npz_weights_are_read_by_keras() -> None:
    extra = {"assets/vocabulary.txt": b"the\nof\nI\n", "assets/": b""}
    assert scan_keras(_archive(extra)).verdict is Verdict.CLEAN
    assert judge_member("model.weights.npz", b"PK\x03\x04") is None
    assert judge_member("config.json", b"{") is None


def test_a_gadget_in_a_module_path_keras_cannot_import_is_an_inert_finding() -> None:
    # Keras imports `module` and looks `class_name` up in it: `keras.utils.get_file` is a
    # function, not a module, so nothing resolves; the name is still reported.
    layer = {"module": "keras.utils.get_file", "class_name": "Dense", "config": {"name": "d"}}
    result = scan_keras(keras_zip(sequential(layer)))
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"keras.gadget.inert"})
    # A resolved gadget is reported once, as resolved.
    gadget = {"module": "keras.utils", "class_name": "get_file", "config": {}}
    assert rules(scan_keras(keras_zip(sequential(gadget)))) == {"keras.gadget.get-file"}
