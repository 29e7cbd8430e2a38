"""Keras, ONNX and model-folder scanners on real files built here (never loaded or run)."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import h5py  # type: ignore[import-untyped]
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from registry.scanners.base import SNIFF_BYTES, FileVerdict, ScanLimits, Verdict
from registry.scanners.folder import ModelFolderScanner
from registry.scanners.keras import KerasScanner
from registry.scanners.onnx_scanner import OnnxScanner

LIMITS = ScanLimits()


@dataclass(frozen=True)
class DiskTarget:
    path: str
    full_path: Path

    @property
    def size(self) -> int:
        return self.full_path.lstat().st_size

    def head(self) -> bytes:
        with self.open() as f:
            return f.read(SNIFF_BYTES)

    def open(self) -> BinaryIO:
        return self.full_path.open("rb")


@dataclass(frozen=True)
class BlobTarget:
    """A target with no place on disk (like a blob-store file)."""

    path: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def head(self) -> bytes:
        return self.data[:SNIFF_BYTES]

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class Folder:
    files: list[Any]


def rules(verdict: FileVerdict) -> set[str]:
    return {f.rule for f in verdict.findings}


# --- Keras ------------------------------------------------------------------------------------


def dense(name: str, units: int = 4, activation: Any = "relu") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32"},
                "registered_name": None,
            },
            "units": units,
            "activation": activation,
            "use_bias": True,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "bias_initializer": {
                "module": "keras.initializers",
                "class_name": "Zeros",
                "config": {},
                "registered_name": None,
            },
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 8]},
    }


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 8], "dtype": "float32", "name": "input"},
                    "registered_name": None,
                },
                *layers,
            ],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 8]},
        "compile_config": {
            "optimizer": {
                "module": "keras.optimizers",
                "class_name": "Adam",
                "config": {"learning_rate": 0.001},
                "registered_name": None,
            },
            "loss": "mean_squared_error",
        },
    }


LAMBDA_KERAS3 = {
    "module": "keras.layers",
    "class_name": "Lambda",
    "config": {
        "name": "evil_lambda",
        "function": {
            "class_name": "__lambda__",
            "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAADAAAA8wwAAACXAHwAUwA=", "defaults": None},
        },
    },
    "registered_name": None,
}


def weights_h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.zeros((8, 4), dtype="float32"))
    return buf.getvalue()


def keras_zip(config: Any, *, raw_config: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.10.0"}))
        zf.writestr("config.json", raw_config if raw_config is not None else json.dumps(config))
        zf.writestr("model.weights.h5", weights_h5())
    return buf.getvalue()


def scan_keras(data: bytes, name: str = "model.keras") -> FileVerdict:
    target = BlobTarget(name, data)
    scanner = KerasScanner()
    assert scanner.applies_to(target)
    return scanner.scan(target, LIMITS)


def test_benign_sequential_dense_keras_is_clean() -> None:
    verdict = scan_keras(keras_zip(sequential(dense("dense"), dense("out", 1, "sigmoid"))))
    assert verdict == FileVerdict(Verdict.CLEAN, ())


def test_keras_routing_is_by_content_not_extension() -> None:
    scanner = KerasScanner()
    assert scanner.applies_to(BlobTarget("weights.bin", keras_zip(sequential(dense("d")))))
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    assert not scanner.applies_to(BlobTarget("model.keras.zip", other.getvalue()))
    assert not scanner.applies_to(BlobTarget("model.bin", b"not a zip at all"))


def test_a_file_named_keras_is_claimed_whatever_its_bytes() -> None:
    """Keras opens `.keras` by name: bytes that are no Keras archive are malformed, not clean."""
    scanner = KerasScanner()
    target = BlobTarget("Model.KERAS", b"not a zip at all")
    assert scanner.applies_to(target)
    result = scanner.scan(target, ScanLimits())
    assert result.verdict is Verdict.MALFORMED
    assert [f.rule for f in result.findings] == ["keras.zip.malformed"]


@pytest.mark.parametrize(
    ("layer", "rule", "verdict", "reference"),
    [
        (LAMBDA_KERAS3, "keras.lambda", Verdict.MALICIOUS, "CVE-2024-3660"),
        (
            dense("d", activation={"class_name": "__lambda__", "config": {"code": "4wEA"}}),
            "keras.lambda",
            Verdict.MALICIOUS,
            "CVE-2024-3660",
        ),
        (  # CVE-2025-1550: module + function injected into the config
            {
                "module": "builtins",
                "class_name": "function",
                "config": "exec",
                "registered_name": "function",
            },
            "keras.module.dangerous",
            Verdict.MALICIOUS,
            "CVE-2025-1550",
        ),
        (
            {"module": "mylib.layers", "class_name": "Fancy", "config": {"name": "fancy"}},
            "keras.module.not-allowed",
            Verdict.SUSPICIOUS,
            "CVE-2025-1550",
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"name": "d"},
                "registered_name": "MyPkg>Dense",
            },
            "keras.custom-object",
            Verdict.SUSPICIOUS,
            None,
        ),
        (
            {
                "module": "keras.utils",
                "class_name": "function",
                "config": "get_file",
                "registered_name": "function",
            },
            "keras.gadget.get-file",
            Verdict.MALICIOUS,
            "CVE-2025-8747",
        ),
        (
            {
                "module": "keras.config",
                "class_name": "function",
                "config": "enable_unsafe_deserialization",
                "registered_name": "function",
            },
            "keras.gadget.unsafe-deserialization",
            Verdict.MALICIOUS,
            "CVE-2025-9906",
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"name": "sm", "filepath": "/tmp/attacker_savedmodel"},
            },
            "keras.gadget.tfsm-layer",
            Verdict.MALICIOUS,
            "CVE-2026-1462",
        ),
        (
            {"module": "keras.layers", "class_name": "TorchModuleWrapper", "config": {}},
            "keras.gadget.torch-module-wrapper",
            Verdict.MALICIOUS,
            None,
        ),
        (
            {"module": "keras.layers", "class_name": "WeirdLayer", "config": {"name": "w"}},
            "keras.class.not-allowed",
            Verdict.SUSPICIOUS,
            None,
        ),
        (
            dense("d", activation="my_custom_act"),
            "keras.function.not-allowed",
            Verdict.SUSPICIOUS,
            None,
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "StringLookup",
                "config": {"name": "lookup", "vocabulary": "/etc/passwd"},
            },
            "keras.lookup.vocabulary-path",
            Verdict.SUSPICIOUS,
            None,
        ),
    ],
)
def test_keras_config_rules(
    layer: dict[str, Any], rule: str, verdict: Verdict, reference: str | None
) -> None:
    result = scan_keras(keras_zip(sequential(dense("ok"), layer)))
    assert result.verdict is verdict
    assert rules(result) == {rule}
    (finding,) = result.findings
    assert finding.reference == reference
    assert finding.member == "config.json"


def test_keras_lambda_evidence_names_the_layer() -> None:
    result = scan_keras(keras_zip(sequential(LAMBDA_KERAS3)))
    (finding,) = result.findings
    assert finding.evidence["layer"] == "evil_lambda"
    assert finding.severity == "critical"


def test_keras_lambda_nested_in_functional_submodel_is_found() -> None:
    inner = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"name": "inner", "layers": [LAMBDA_KERAS3]},
        "registered_name": "Functional",
    }
    result = scan_keras(keras_zip(sequential(dense("d"), inner)))
    assert result.verdict is Verdict.MALICIOUS
    assert rules(result) == {"keras.lambda"}


def test_keras_tf_op_lambda() -> None:
    def op(function: str) -> dict[str, Any]:
        return {"class_name": "TFOpLambda", "config": {"name": "op", "function": function}}

    bad = scan_keras(keras_zip(sequential(op("io.write_file"))))
    assert (bad.verdict, rules(bad)) == (Verdict.MALICIOUS, {"keras.tf-op-lambda"})
    math = scan_keras(keras_zip(sequential(op("__operators__.add"))))
    assert (math.verdict, rules(math)) == (Verdict.SUSPICIOUS, {"keras.tf-op-lambda"})


def test_malformed_keras_archives() -> None:
    bad_json = scan_keras(keras_zip(None, raw_config=b"{not json"))
    assert (bad_json.verdict, rules(bad_json)) == (Verdict.MALFORMED, {"keras.config.malformed"})

    not_object = scan_keras(keras_zip([1, 2, 3]))
    assert rules(not_object) == {"keras.config.malformed"}

    dup_key = scan_keras(keras_zip(None, raw_config=b'{"class_name": "Dense", "class_name": "X"}'))
    assert rules(dup_key) == {"keras.config.duplicate-key"}

    truncated = keras_zip(sequential(dense("d")))[:200]
    result = scan_keras(truncated)
    assert (result.verdict, rules(result)) == (Verdict.MALFORMED, {"keras.zip.malformed"})

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("config.json", json.dumps(sequential(LAMBDA_KERAS3)))
            zf.writestr("config.json", json.dumps(sequential(dense("d"))))
    dup = scan_keras(buf.getvalue())
    assert (dup.verdict, rules(dup)) == (Verdict.MALFORMED, {"keras.zip.duplicate-member"})

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.weights.h5", weights_h5())
    missing = scan_keras(buf.getvalue())
    assert rules(missing) == {"keras.config.missing"}


def test_keras_archives_go_through_the_strict_zip_reader() -> None:
    # A CRC-32 mismatch: `zipfile` refused such a member; the strict reader reads it and says so.
    raw = keras_zip(sequential(dense("dense_crc")))
    assert raw.count(b'"dense_crc"') == 1  # stored, so the name is in the archive as written
    flipped = raw.replace(b'"dense_crc"', b'"dense_crd"')
    bad_crc = scan_keras(flipped)
    assert (bad_crc.verdict, rules(bad_crc)) == (Verdict.MALFORMED, {"zip.crc-mismatch"})
    assert {f.member for f in bad_crc.findings} == {"config.json"}

    # A compression method the strict reader does not read: the archive is refused, malformed,
    # and the finding names the zip reader's rule.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("config.json", json.dumps(sequential(dense("d"))))
    refused = scan_keras(buf.getvalue())
    assert (refused.verdict, rules(refused)) == (Verdict.MALFORMED, {"keras.zip.malformed"})
    assert refused.findings[0].evidence["zip_rule"] == "zip.method"


def legacy_h5(tmp_path: Path, config: Any | None, name: str = "model.h5") -> DiskTarget:
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        if config is not None:
            text = config if isinstance(config, str) else json.dumps(config)
            f.attrs["model_config"] = text.encode("utf-8")
            f.attrs["keras_version"] = b"2.12.0"
        f.create_dataset("model_weights/dense/kernel:0", data=np.ones((8, 4), dtype="float32"))
    return DiskTarget(name, path)


KERAS2_SEQUENTIAL = {
    "class_name": "Sequential",
    "config": {
        "name": "sequential",
        "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8]}},
            {
                "class_name": "Dense",
                "config": {
                    "name": "dense",
                    "units": 4,
                    "activation": "relu",
                    "kernel_initializer": {"class_name": "GlorotUniform", "config": {}},
                },
            },
        ],
    },
}


def test_legacy_h5_benign_is_clean(tmp_path: Path) -> None:
    target = legacy_h5(tmp_path, KERAS2_SEQUENTIAL)
    scanner = KerasScanner()
    assert scanner.applies_to(target)
    assert scanner.scan(target, LIMITS) == FileVerdict(Verdict.CLEAN, ())


def test_legacy_h5_lambda_is_malicious(tmp_path: Path) -> None:
    config = json.loads(json.dumps(KERAS2_SEQUENTIAL))
    config["config"]["layers"].append(
        {
            "class_name": "Lambda",
            "config": {
                "name": "payload",
                "function": ["4wEAAAAAAAAA", None, None],
                "function_type": "lambda",
                "module": "__main__",
            },
        }
    )
    target = legacy_h5(tmp_path, config, name="weights.data")  # extension says nothing
    scanner = KerasScanner()
    assert scanner.applies_to(target)
    result = scanner.scan(target, LIMITS)
    assert (result.verdict, rules(result)) == (Verdict.MALICIOUS, {"keras.lambda"})
    (finding,) = result.findings
    assert finding.reference == "CVE-2025-9905"
    assert finding.evidence["layer"] == "payload"
    assert finding.evidence["function_type"] == "lambda"


def test_h5_without_model_config_is_not_keras(tmp_path: Path) -> None:
    assert not KerasScanner().applies_to(legacy_h5(tmp_path, None))


def test_malformed_h5(tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    scanner = KerasScanner()
    target = DiskTarget("broken.h5", broken)
    assert scanner.applies_to(target)
    result = scanner.scan(target, LIMITS)
    assert (result.verdict, rules(result)) == (Verdict.MALFORMED, {"keras.h5.malformed"})

    bad_json = legacy_h5(tmp_path, "{oops", name="bad.h5")
    result = scanner.scan(bad_json, LIMITS)
    assert (result.verdict, rules(result)) == (Verdict.MALFORMED, {"keras.config.malformed"})


# --- ONNX -------------------------------------------------------------------------------------


def external_tensor(name: str, location: str | None) -> TensorProto:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [2], [0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    if location is not None:
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", location
    for key, value in (("offset", "0"), ("length", "8")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def onnx_model(
    *,
    initializers: list[TensorProto] | None = None,
    nodes: list[onnx.NodeProto] | None = None,
    sparse: list[onnx.SparseTensorProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
    opsets: list[onnx.OperatorSetIdProto] | None = None,
) -> bytes:
    graph = helper.make_graph(
        nodes if nodes is not None else [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=initializers or [],
        sparse_initializer=sparse or [],
    )
    model = helper.make_model(
        graph,
        opset_imports=opsets or [helper.make_opsetid("", 17)],
        functions=functions or [],
        producer_name="modelctl-tests",
    )
    data: bytes = model.SerializeToString()
    return data


def scan_onnx(data: bytes, name: str = "model.onnx") -> FileVerdict:
    target = BlobTarget(name, data)
    scanner = OnnxScanner()
    assert scanner.applies_to(target)
    return scanner.scan(target, LIMITS)


def test_benign_onnx_is_clean() -> None:
    assert scan_onnx(onnx_model()) == FileVerdict(Verdict.CLEAN, ())


def test_onnx_sniff_rejects_other_formats() -> None:
    scanner = OnnxScanner()
    for data in (
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",  # pickle
        keras_zip(sequential(dense("d"))),
        b"GGUF\x03\x00\x00\x00",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}              ",  # safetensors
        b'{"model_type": "bert"}',
        b"",
    ):
        assert not scanner.applies_to(BlobTarget("model.bin", data))
        # Named `.onnx`, the runtime parses it whatever it holds: claimed, and malformed.
        named = BlobTarget("model.onnx", data)
        assert scanner.applies_to(named)
        assert scanner.scan(named, ScanLimits()).verdict is Verdict.MALFORMED
    assert scanner.applies_to(BlobTarget("no-extension", onnx_model()))


@pytest.mark.parametrize(
    ("location", "reference"),
    [
        ("../../etc/passwd", "CVE-2022-25882"),
        ("/etc/passwd", "CVE-2022-25882"),
        ("C:\\Windows\\win.ini", "CVE-2022-25882"),
        ("\\\\server\\share\\w.bin", "CVE-2022-25882"),
        ("data/../../outside.bin", "CVE-2024-27318"),
        ("..\\..\\secret", "CVE-2022-25882"),
    ],
)
def test_onnx_external_data_traversal_is_malicious(location: str, reference: str) -> None:
    result = scan_onnx(onnx_model(initializers=[external_tensor("w", location)]))
    assert (result.verdict, rules(result)) == (
        Verdict.MALICIOUS,
        {"onnx.external-data.unsafe-path"},
    )
    (finding,) = result.findings
    assert finding.reference == reference
    assert finding.evidence["location"] == location


def test_onnx_external_data_in_attribute_and_sparse_tensors() -> None:
    constant = helper.make_node(
        "Constant", [], ["c"], value=external_tensor("const", "../../../root/.ssh/id_rsa")
    )
    relu = helper.make_node("Relu", ["x"], ["y"])
    result = scan_onnx(onnx_model(nodes=[constant, relu]))
    assert (result.verdict, rules(result)) == (
        Verdict.MALICIOUS,
        {"onnx.external-data.unsafe-path"},
    )
    assert "attribute value" in str(result.findings[0].evidence["where"])

    sparse = helper.make_sparse_tensor(
        external_tensor("sv", "../secret"),
        helper.make_tensor("si", TensorProto.INT64, [2], [0, 1]),
        [2],
    )
    result = scan_onnx(onnx_model(sparse=[sparse]))
    assert (result.verdict, rules(result)) == (
        Verdict.MALICIOUS,
        {"onnx.external-data.unsafe-path"},
    )
    assert "sparse" in str(result.findings[0].evidence["where"])


def test_onnx_safe_external_data_is_reported_as_info() -> None:
    result = scan_onnx(onnx_model(initializers=[external_tensor("w", "weights.bin")]))
    assert (result.verdict, rules(result)) == (Verdict.CLEAN, {"onnx.external-data.location"})
    assert result.findings[0].evidence["locations"] == ["weights.bin"]


def test_onnx_odd_external_paths_are_suspicious() -> None:
    for location in ("dir\\weights.bin", "file:weights.bin", "sub/../weights.bin"):
        result = scan_onnx(onnx_model(initializers=[external_tensor("w", location)]))
        assert (result.verdict, rules(result)) == (
            Verdict.SUSPICIOUS,
            {"onnx.external-data.odd-path"},
        ), location


def test_onnx_external_without_location_is_malformed() -> None:
    result = scan_onnx(onnx_model(initializers=[external_tensor("w", None)]))
    assert (result.verdict, rules(result)) == (
        Verdict.MALFORMED,
        {"onnx.external-data.malformed"},
    )


def test_onnx_domains() -> None:
    custom = helper.make_node("EvilOp", ["x"], ["y"], domain="com.evil")
    result = scan_onnx(
        onnx_model(
            nodes=[custom], opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]
        )
    )
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"onnx.domain.custom"})
    assert result.findings[0].evidence == {"domain": "com.evil", "op_types": ["EvilOp"]}

    contrib = helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")
    result = scan_onnx(
        onnx_model(
            nodes=[contrib],
            opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        )
    )
    assert (result.verdict, rules(result)) == (Verdict.CLEAN, {"onnx.domain.contrib"})

    python_op = helper.make_node("PythonOp", ["x"], ["y"], domain="com.microsoft")
    result = scan_onnx(onnx_model(nodes=[python_op]))
    assert (result.verdict, rules(result)) == (Verdict.SUSPICIOUS, {"onnx.domain.custom"})

    ml = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="L2")
    result = scan_onnx(
        onnx_model(
            nodes=[ml], opsets=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
        )
    )
    assert result == FileVerdict(Verdict.CLEAN, ())


def test_onnx_local_functions() -> None:
    body = [helper.make_node("Relu", ["a"], ["b"])]
    function = helper.make_function(
        "local.fn", "MyRelu", ["a"], ["b"], body, [helper.make_opsetid("", 17)]
    )
    call = helper.make_node("MyRelu", ["x"], ["y"], domain="local.fn")
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local.fn", 1)]
    result = scan_onnx(onnx_model(nodes=[call], functions=[function], opsets=opsets))
    assert (result.verdict, rules(result)) == (Verdict.CLEAN, {"onnx.function.local"})

    evil_body = [helper.make_node("EvilOp", ["a"], ["b"], domain="com.evil")]
    evil = helper.make_function(
        "local.fn", "MyRelu", ["a"], ["b"], evil_body, [helper.make_opsetid("com.evil", 1)]
    )
    result = scan_onnx(onnx_model(nodes=[call], functions=[evil], opsets=opsets))
    assert result.verdict is Verdict.SUSPICIOUS
    assert rules(result) == {"onnx.function.local", "onnx.domain.custom"}


def test_malformed_onnx() -> None:
    data = onnx_model(initializers=[helper.make_tensor("w", TensorProto.FLOAT, [64], [1.0] * 64)])
    result = scan_onnx(data[: len(data) - 40])
    assert (result.verdict, rules(result)) == (Verdict.MALFORMED, {"onnx.malformed"})
    result = scan_onnx(b"\x08\x07")  # ir_version only: no graph
    assert (result.verdict, rules(result)) == (Verdict.MALFORMED, {"onnx.malformed"})


# --- model folder -----------------------------------------------------------------------------


def disk_folder(root: Path) -> Folder:
    files = [
        DiskTarget(p.relative_to(root).as_posix(), p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    ]
    return Folder(files)


def scan_folder(folder: Folder) -> Mapping[str, FileVerdict]:
    return ModelFolderScanner().scan_folder(folder, LIMITS)


def test_clean_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (tmp_path / "README.md").write_text("# A model\n\nUse it with `import transformers`.\n")
    (tmp_path / "model.onnx").write_bytes(onnx_model())
    assert scan_folder(disk_folder(tmp_path)) == {".": FileVerdict(Verdict.CLEAN, ())}


def test_remote_code_folder(tmp_path: Path) -> None:
    (tmp_path / "modeling_x.py").write_text("import torch\n\nclass XModel:\n    pass\n")
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}})
    )
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["other/repo--tok.XTok", None]}})
    )
    (tmp_path / "helper").write_text("from os import path\n\ndef f(x):\n    return x\n")
    (tmp_path / "notes.txt").write_text("def is a keyword; import things later (\n")
    result = scan_folder(disk_folder(tmp_path))
    flagged = {"modeling_x.py", "config.json", "tokenizer_config.json", "helper"}
    assert set(result) == flagged | {"."}
    for path in flagged:
        assert result[path].verdict is Verdict.SUSPICIOUS
        assert rules(result[path]) == {"folder.remote-code"}
        assert result[path].findings[0].severity == "high"
    assert result["tokenizer_config.json"].findings[0].evidence["other_repos"] == ["other/repo"]
    summary = result["."]
    assert (summary.verdict, rules(summary)) == (Verdict.SUSPICIOUS, {"folder.remote-code"})
    files = summary.findings[0].evidence["files"]
    assert isinstance(files, list)
    assert set(files) == flagged


def test_onnx_external_data_symlink_outside_is_malicious(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"\x00" * 8)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(
        onnx_model(initializers=[external_tensor("w", "weights.bin")])
    )
    os.symlink(outside / "secret", model_dir / "weights.bin")
    result = scan_folder(disk_folder(model_dir))
    verdict = result["model.onnx"]
    assert (verdict.verdict, rules(verdict)) == (
        Verdict.MALICIOUS,
        {"folder.onnx-external-data.symlink"},
    )
    assert (result["."].verdict, rules(result["."])) == (
        Verdict.MALICIOUS,
        {"folder.onnx-external-data.symlink"},
    )


def test_onnx_external_data_through_symlinked_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "w.bin").write_bytes(b"\x00" * 8)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(
        onnx_model(initializers=[external_tensor("w", "data/w.bin")])
    )
    os.symlink(tmp_path / "etc", model_dir / "data")
    result = scan_folder(disk_folder(model_dir))
    assert result["model.onnx"].verdict is Verdict.MALICIOUS
    assert rules(result["model.onnx"]) == {"folder.onnx-external-data.symlink"}


def test_onnx_external_data_hardlink_and_missing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"\x00" * 8)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.link(elsewhere, model_dir / "weights.bin")
    (model_dir / "model.onnx").write_bytes(
        onnx_model(
            initializers=[external_tensor("w", "weights.bin"), external_tensor("v", "gone.bin")]
        )
    )
    result = scan_folder(disk_folder(model_dir))
    verdict = result["model.onnx"]
    assert verdict.verdict is Verdict.SUSPICIOUS
    assert rules(verdict) == {
        "folder.onnx-external-data.hardlink",
        "folder.onnx-external-data.missing",
    }
    hardlink = next(f for f in verdict.findings if f.rule.endswith("hardlink"))
    assert hardlink.reference == "GHSA-cmw6-hcpp-c6jp"
    assert "weights.bin" not in result  # the finding is on the model that names it


def test_onnx_external_data_plain_file_is_clean(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 8)
    (tmp_path / "model.onnx").write_bytes(
        onnx_model(initializers=[external_tensor("w", "weights.bin")])
    )
    assert scan_folder(disk_folder(tmp_path)) == {".": FileVerdict(Verdict.CLEAN, ())}


def test_blob_targets_check_presence_only() -> None:
    model = onnx_model(initializers=[external_tensor("w", "sub/weights.bin")])
    present = Folder([BlobTarget("m/model.onnx", model), BlobTarget("m/sub/weights.bin", b"0")])
    assert scan_folder(present) == {".": FileVerdict(Verdict.CLEAN, ())}
    absent = Folder([BlobTarget("m/model.onnx", model)])
    result = scan_folder(absent)
    assert rules(result["m/model.onnx"]) == {"folder.onnx-external-data.missing"}
    assert result["."].verdict is Verdict.SUSPICIOUS
