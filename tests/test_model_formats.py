"""Formats beyond pickle, safetensors, GGUF, Keras and ONNX (issue 14, class 5): TensorFlow
graphs, NeMo archives, skops files, TorchScript archives, and the `unsupported` formats.

The labelled samples live in tests/assets/corpus (test_corpus.py checks every verdict); these
tests pin the behaviour around them: routing by content, evidence, bounds, the protobuf wire
reader, and what the other scanners no longer claim. Nothing here loads a model: samples are
written byte by byte (the one real TorchScript archive is *saved* by torch, never loaded).
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import tarfile
import time
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from registry.scanners import catalog, protobuf_wire
from registry.scanners.base import FileVerdict, ScanLimits, Verdict
from registry.scanners.hydra_config import HydraConfigScanner
from registry.scanners.nemo import NemoScanner
from registry.scanners.onnx_scanner import OnnxScanner
from registry.scanners.pickle_scanner import PickleFamilyScanner
from registry.scanners.runner import LocalFile, ScanReport, local_targets, scan_targets
from registry.scanners.skops import SkopsScanner
from registry.scanners.tensorflow_graph import TensorFlowGraphScanner
from registry.scanners.torchscript import TorchScriptScanner
from registry.scanners.unsupported_formats import UnsupportedFormatsScanner
from tests.assets.model_formats import pb_int, pb_len, saved_model, tf_function, tf_node

CORPUS = Path(__file__).parent / "assets" / "corpus"
LIMITS = ScanLimits()


def put(tmp_path: Path, name: str, data: bytes) -> LocalFile:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return LocalFile(name, path, len(data))


def scan_all(path: Path) -> ScanReport:
    files, _ = catalog.all_scanners()
    targets, _ = local_targets(path)
    return scan_targets(targets, files, [])


def rules(v: FileVerdict) -> list[str]:
    return [f.rule for f in v.findings]


def tar_of(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return bio.getvalue()


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return bio.getvalue()


# -- the protobuf wire reader --------------------------------------------------------------------


def test_wire_reader_reads_fields_and_refuses_what_a_parser_would() -> None:
    message = pb_int(1, 300) + pb_len(2, b"abc") + b"\x1d" + (7).to_bytes(4, "little")
    fields = list(protobuf_wire.fields(message))
    assert [(f.number, f.wire) for f in fields] == [(1, 0), (2, 2), (3, 5)]
    assert fields[0].value == 300
    assert bytes(fields[1].data) == b"abc"
    assert fields[2].value == 7
    for bad in (
        b"\x08\x80",  # varint cut short
        b"\x12\x05ab",  # length past the end
        b"\x0b\x0c",  # a group (wire type 3)
        b"\x00\x01",  # field number 0
        b"\x08" + b"\xff" * 11,  # varint longer than 10 bytes
    ):
        with pytest.raises(protobuf_wire.WireError):
            list(protobuf_wire.fields(bad))


# -- TensorFlow ----------------------------------------------------------------------------------


def test_savedmodel_is_tensorflows_not_onnxs(tmp_path: Path) -> None:
    """Before: every real SavedModel was `malformed` (ONNX took `08 01` for ir_version 1)."""
    t = put(
        tmp_path,
        "m/saved_model.pb",
        (CORPUS / "tensorflow/savedmodel_benign/saved_model.pb").read_bytes(),
    )
    assert not OnnxScanner().applies_to(t)
    assert TensorFlowGraphScanner().applies_to(t)
    onnx = LocalFile(
        "m.onnx",
        CORPUS / "onnx/matmul_benign.onnx",
        (CORPUS / "onnx/matmul_benign.onnx").stat().st_size,
    )
    assert OnnxScanner().applies_to(onnx)
    assert not TensorFlowGraphScanner().applies_to(onnx)
    assert not UnsupportedFormatsScanner().applies_to(onnx)


def test_pyfunc_evidence_names_nodes_functions_and_tokens(tmp_path: Path) -> None:
    nodes = [tf_node("saver", "SaveV2"), tf_node("restore", "RestoreV2")]
    hook = tf_node("hook", "EagerPyFunc", ("x",), token="pyfunc_3")
    data = saved_model(nodes, [tf_function("__inference_f_1", [hook, hook])])
    v = TensorFlowGraphScanner().scan(put(tmp_path, "saved_model.pb", data), LIMITS)
    assert v.verdict is Verdict.SUSPICIOUS
    (python,) = [f for f in v.findings if f.rule == "tensorflow.op.python"]
    assert python.evidence["count"] == 2
    assert python.evidence["nodes"] == ["function __inference_f_1/hook"] * 2
    assert python.evidence["details"] == ["token pyfunc_3"]
    # The saver subgraph every SavedModel has is not a file-IO finding.
    assert not {"tensorflow.op.file-read", "tensorflow.op.file-write"} & set(rules(v))


def test_savedmodel_with_fields_a_savedmodel_lacks_is_malformed(tmp_path: Path) -> None:
    # An ONNX-style `graph` (field 7) after a SavedModel prefix: two parsers, two readings.
    data = saved_model([tf_node("x", "Placeholder")]) + pb_len(7, b"\x0a\x01x")
    v = TensorFlowGraphScanner().scan(put(tmp_path, "saved_model.pb", data), LIMITS)
    assert v.verdict is Verdict.MALFORMED
    assert "unknown field 7" in v.findings[0].message
    nameless = saved_model([pb_len(1, "x")])  # a NodeDef with no op
    v = TensorFlowGraphScanner().scan(put(tmp_path, "b/saved_model.pb", nameless), LIMITS)
    assert v.verdict is Verdict.MALFORMED


def test_tensorflow_node_count_is_bounded(tmp_path: Path) -> None:
    data = saved_model([tf_node(f"n{i}", "Relu") for i in range(50)])
    v = TensorFlowGraphScanner().scan(
        put(tmp_path, "saved_model.pb", data), ScanLimits(max_items=10)
    )
    assert v.verdict is Verdict.MALFORMED


# -- NeMo ----------------------------------------------------------------------------------------


def nemo_with(config: str, extra: list[tuple[str, bytes]] | None = None) -> bytes:
    return tar_of([("./model_config.yaml", config.encode()), *(extra or [])])


def test_nemo_is_claimed_by_content_and_judges_every_target_form(tmp_path: Path) -> None:
    config = (
        "target: nemo.collections.nlp.models.TextClassificationModel\n"
        "model:\n  cls: torch.hub.load\n  params: {repo: x}\n"
        "optim:\n  _target_: torch.optim.AdamW\n"
        "loader:\n  _target_: torch.load\n"
        "ckpt:\n  _target_: pytorch_lightning.utilities.cloud_io.load\n"
    )
    t = put(tmp_path, "checkpoint.tar", nemo_with(config))  # no .nemo name
    assert NemoScanner().applies_to(t)
    v = NemoScanner().scan(t, LIMITS)
    assert v.verdict is Verdict.MALICIOUS
    bad = sorted(str(f.evidence["target"]) for f in v.findings if f.rule == "nemo.target.dangerous")
    # A loader under an allowed namespace is still a loader.
    assert bad == ["pytorch_lightning.utilities.cloud_io.load", "torch.hub.load", "torch.load"]
    assert all(
        f.reference == "CVE-2025-23304" for f in v.findings if f.rule.startswith("nemo.target")
    )
    (summary,) = [f for f in v.findings if f.rule == "nemo.config.targets"]
    assert summary.evidence["count"] == 5
    plain_tar = put(tmp_path, "other.tar", tar_of([("weights.bin", b"\0" * 16)]))
    assert not NemoScanner().applies_to(plain_tar)


def test_nemo_yaml_alias_bomb_is_walked_once_per_node(tmp_path: Path) -> None:
    lines = ["a0: &a0 {_target_: nemo.core.Thing}"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]")
    started = time.monotonic()
    v = NemoScanner().scan(put(tmp_path, "bomb.nemo", nemo_with("\n".join(lines) + "\n")), LIMITS)
    assert time.monotonic() - started < 5
    (summary,) = [f for f in v.findings if f.rule == "nemo.config.targets"]
    assert summary.evidence["count"] == 1
    assert v.verdict is Verdict.CLEAN


def test_nemo_member_paths_and_duplicate_configs_are_suspicious(tmp_path: Path) -> None:
    data = nemo_with(
        "optim: {name: adam}\n",
        [("../../etc/cron.d/x", b"* * * * * true\n"), ("model_config.yaml", b"x: 1\n")],
    )
    v = NemoScanner().scan(put(tmp_path, "m.nemo", data), LIMITS)
    assert {"nemo.member-path", "nemo.config.duplicate"} <= set(rules(v))
    assert v.verdict is Verdict.SUSPICIOUS
    broken = NemoScanner().scan(put(tmp_path, "b.nemo", nemo_with("a: [1, 2\n")), LIMITS)
    assert broken.verdict is Verdict.MALFORMED


# -- skops ---------------------------------------------------------------------------------------


def skops_with(root: Mapping[str, object], members: list[tuple[str, bytes]] | None = None) -> bytes:
    return zip_of([("schema.json", json.dumps(root).encode()), *(members or [])])


def test_skops_routing_loaders_and_missing_files(tmp_path: Path) -> None:
    fn = {
        "__class__": "function",
        "__module__": "numpy",
        "__loader__": "FunctionNode",
        "content": {"module_path": "numpy", "function": "load"},
    }
    arr = {
        "__class__": "ndarray",
        "__module__": "numpy",
        "__loader__": "NdArrayNode",
        "file": "a.npy",
    }
    root = {
        "__class__": "list",
        "__module__": "builtins",
        "__loader__": "ListNode",
        "content": [fn, arr],
    }
    t = put(tmp_path, "model.bin", skops_with(root))  # a zip with schema.json, any name
    assert SkopsScanner().applies_to(t)
    v = SkopsScanner().scan(t, LIMITS)
    assert v.verdict is Verdict.MALICIOUS  # numpy.load is a nested loader
    assert "skops.schema.malformed" in rules(v)  # a.npy is not in the archive
    benign_op = {
        "__class__": "itemgetter",
        "__module__": "operator",
        "__loader__": "OperatorFuncNode",
        "attrs": {"_items": [0]},
    }
    v = SkopsScanner().scan(put(tmp_path, "op.skops", skops_with(benign_op)), LIMITS)
    assert v.verdict is Verdict.SUSPICIOUS
    assert rules(v)[0] == "skops.operator-node"


# -- TorchScript ---------------------------------------------------------------------------------


def test_a_real_scripted_module_is_clean(tmp_path: Path) -> None:
    """torch.jit.save's archive: `__torch__` classes and `torch.jit._pickle` list builders in
    its pickles are the TorchScript unpickler's own (before: `malicious`)."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[name-defined]
            signal = torch.relu(self.lin(x))  # a local named like a stdlib module
            return signal.sum(dim=0)

    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.script; archives stay
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Tiny()).save(str(path))
    report = scan_all(path)
    (entry,) = report.files
    assert entry.verdict is Verdict.CLEAN, [f.message for f in entry.findings]
    assert "torchscript" in entry.scanners


def test_torchscript_archives_still_catch_python_globals_and_package_modules(
    tmp_path: Path,
) -> None:
    evil = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    ts = zip_of(
        [
            ("m/data.pkl", evil),
            ("m/code/__torch__.py", b"x = 1\n"),
            ("m/constants.pkl", b"\x80\x02)."),
        ]
    )
    t = put(tmp_path, "m.pt", ts)
    assert PickleFamilyScanner().scan(t, LIMITS).verdict is Verdict.MALICIOUS
    package = zip_of(
        [
            ("pkg/.data/version", b"6\n"),
            ("pkg/.data/extern_modules", b"torch\n"),
            ("pkg/mod/helpers.py", b"import subprocess as sp\nsp.run(['true'])\n"),
        ]
    )
    p = put(tmp_path, "p.pt", package)
    assert TorchScriptScanner().applies_to(p)
    v = TorchScriptScanner().scan(p, LIMITS)
    assert v.verdict is Verdict.MALICIOUS
    calls = [
        f.evidence.get("call") for f in v.findings if f.rule == "torchscript.code.dangerous-call"
    ]
    assert calls == ["sp.run"]


# -- recognised, not analysed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("model.rds", lzma.compress(b"X\n\x00\x00\x00\x03" + b"\x00" * 32)),
        ("workspace.RData", gzip.compress(b"RDX3\nX\n" + b"\x00" * 32, mtime=0)),
        ("anything.bin", b"RDX2\nX\n" + b"\x00" * 32),
        ("old.mlmodel", pb_int(1, 1) + pb_len(2, pb_len(1, pb_len(1, "input")))),
        ("m.bin", b"MZqFpD='\n" + b"\x00" * 64),
        ("tree.txt", b"tree\nversion=v3\n"),
    ],
)
def test_recognised_formats_are_unsupported_not_clean(
    tmp_path: Path, name: str, data: bytes
) -> None:
    t = put(tmp_path, name, data)
    assert UnsupportedFormatsScanner().applies_to(t)
    v = UnsupportedFormatsScanner().scan(t, LIMITS)
    assert v.verdict is Verdict.UNSUPPORTED
    (finding,) = v.findings
    assert finding.evidence["needed"]
    report = scan_all(t.full_path)
    assert report.verdict is not Verdict.CLEAN


# -- named for a validated format, bytes of something else ---------------------------------------

WEIGHTS_LIKE = b"\x00" + bytes(range(256)) * 16  # raw numbers: no format's magic, no header


@pytest.mark.parametrize(
    ("name", "scanner", "rule"),
    [
        ("model.safetensors", "safetensors", "safetensors.header.length"),
        ("model.gguf", "gguf", "gguf.header.magic"),
        ("model.onnx", "onnx", "onnx.malformed"),
        ("model.keras", "keras", "keras.zip.malformed"),
    ],
)
def test_a_file_named_for_a_validated_format_is_never_clean_by_its_bytes(
    tmp_path: Path, name: str, scanner: str, rule: str
) -> None:
    """Loaders pick the parser by name: a `.safetensors` of other bytes is malformed, not clean."""
    report = scan_all(put(tmp_path, name, WEIGHTS_LIKE).full_path)
    (entry,) = report.files
    assert entry.verdict is Verdict.MALFORMED
    assert entry.scanners == (scanner,)
    assert [f.rule for f in entry.findings] == [rule]
    # The same bytes under a name that promises nothing are raw data: clean, no scanner.
    (raw,) = scan_all(put(tmp_path, "weights.raw", WEIGHTS_LIKE).full_path).files
    assert (raw.verdict, raw.scanners) == (Verdict.CLEAN, ())


def test_a_pickle_named_safetensors_is_the_pickle_scanners_too(tmp_path: Path) -> None:
    payload = b"cos\nsystem\n(S'echo pwned'\ntR."
    (entry,) = scan_all(put(tmp_path, "model.safetensors", payload).full_path).files
    assert entry.verdict is Verdict.MALICIOUS
    assert set(entry.scanners) == {"pickle", "safetensors"}


def test_booster_pickles_keep_the_pickle_verdict_and_say_why(tmp_path: Path) -> None:
    report = scan_all(CORPUS / "unsupported/xgboost_booster.pkl")
    (entry,) = report.files
    assert entry.verdict is Verdict.SUSPICIOUS
    unsupported = [f for f in entry.findings if f.scanner == "unsupported-formats"]
    assert unsupported[0].evidence["globals"] == ["xgboost.core.Booster"]
    plain = put(tmp_path, "state.pkl", b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.")
    assert not UnsupportedFormatsScanner().applies_to(plain)


# -- hostile nesting: a bound, never a crash -----------------------------------------------------


def test_deep_nesting_is_malformed_not_a_crash(tmp_path: Path) -> None:
    depth = 100_000
    nested = "[" * depth + "]" * depth
    yaml_config = nemo_with(f"a: {nested}\n")
    source = ("x = " + "(" * depth + "1" + ")" * depth + "\n").encode()
    script = zip_of([("a/code/__torch__.py", source), ("a/constants.pkl", b"\x80\x02).")])
    schema = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", '
    skops_file = zip_of([("schema.json", f'{schema}"content": {nested}}}'.encode())])
    cases = (
        (NemoScanner(), "deep.nemo", yaml_config, "nemo.config.malformed"),
        (TorchScriptScanner(), "deep.pt", script, "torchscript.code.unparsable"),
        (SkopsScanner(), "deep.skops", skops_file, "skops.schema.malformed"),
    )
    for scanner, name, data, rule in cases:
        v = scanner.scan(put(tmp_path, name, data), LIMITS)
        assert v.verdict is Verdict.MALFORMED, name
        assert rule in rules(v), name


# -- Hydra configs beside the weights ------------------------------------------------------------


def test_hydra_configs_are_claimed_only_when_they_name_targets(tmp_path: Path) -> None:
    plain = put(tmp_path, "config.json", json.dumps({"hidden_size": 8}).encode())
    assert not HydraConfigScanner().applies_to(plain)
    other = put(tmp_path, "notes.txt", b"_target_: os.system\n")  # not a config file name
    assert not HydraConfigScanner().applies_to(other)
    third_party = put(tmp_path, "a/config.yaml", b"model:\n  _target_: uni2ts.model.Moirai\n")
    v = HydraConfigScanner().scan(third_party, LIMITS)
    assert v.verdict is Verdict.CLEAN  # reported, not judged: the library decides its namespaces
    assert v.findings[0].evidence["targets"] == ["uni2ts.model.Moirai"]
    loader = put(tmp_path, "b/config.yaml", b"ckpt:\n  _target_: torch.load\n")
    assert HydraConfigScanner().scan(loader, LIMITS).verdict is Verdict.MALICIOUS


def test_hydra_marker_is_found_across_read_chunks_and_large_files_stay_unclaimed(
    tmp_path: Path,
) -> None:
    big = b'{"vocab": "' + b"x" * (3 << 20) + b'"}'  # a 3 MiB JSON without targets
    assert not HydraConfigScanner().applies_to(put(tmp_path, "tokenizer.json", big))
    split = b" " * ((1 << 20) - 4) + b'{"_target_": "os.system"}'  # the marker spans two chunks
    t = put(tmp_path, "config.json", split)
    assert HydraConfigScanner().applies_to(t)
    assert HydraConfigScanner().scan(t, LIMITS).verdict is Verdict.MALICIOUS
