"""Corpus samples for the formats beyond pickle, safetensors, GGUF, Keras and ONNX (issue 14,
class 5): TensorFlow graphs, NeMo archives, skops files, TorchScript archives, and the formats
the scanners recognise but do not analyse (`unsupported`).

Imported by `generate.py`, which hands in its zip / tar / pickle writers. Every sample is
written byte by byte here: no TensorFlow, NeMo, skops or CoreML is installed or run. Payloads
are harmless (`true`, `1+1`) like the rest of the corpus.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class CorpusLike(Protocol):
    def add(
        self,
        path: str,
        data: bytes,
        *,
        fmt: str,
        technique: str,
        expected: str,
        reference: str | None = None,
        notes: str = "",
    ) -> None: ...


@dataclass(frozen=True)
class Kit:
    """The writers of generate.py this module reuses."""

    zip_of: Callable[[list[tuple[str, bytes]]], bytes]  # stored members, fixed timestamps
    tar_of: Callable[[list[tuple[str, bytes]]], bytes]  # ustar, mtime 0
    benign_torch_zip: bytes  # a torch.save-style state dict archive
    malicious_torch_zip: bytes  # the same with a posix.system data.pkl
    npy_f32: Callable[[tuple[int, ...]], bytes]  # a float32 .npy of that shape


# --------------------------------------------------------------------------------------------
# Protobuf wire writer (TensorFlow, CoreML, PaddlePaddle)
# --------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_len(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def pb_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def tf_node(name: str, op: str, inputs: tuple[str, ...] = (), **attrs: str) -> bytes:
    """NodeDef: 1 name, 2 op, 3 input, 5 attr map (string values: AttrValue field 2)."""
    body = pb_len(1, name) + pb_len(2, op) + b"".join(pb_len(3, i) for i in inputs)
    for key, value in attrs.items():
        body += pb_len(5, pb_len(1, key) + pb_len(2, pb_len(2, value)))
    return body


def tf_function(name: str, nodes: list[bytes]) -> bytes:
    """FunctionDef: 1 signature (OpDef: 1 name), 3 node_def."""
    return pb_len(1, pb_len(1, name)) + b"".join(pb_len(3, n) for n in nodes)


def tf_graph(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """GraphDef: 1 node, 2 library (FunctionDefLibrary: 1 function), 4 versions."""
    body = b"".join(pb_len(1, n) for n in nodes)
    if functions:
        body += pb_len(2, b"".join(pb_len(1, f) for f in functions))
    return body + pb_len(4, pb_int(1, 1645))


def saved_model(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """SavedModel: 1 schema version 1, 2 MetaGraphDef (1 meta_info_def with tag "serve",
    2 graph_def)."""
    meta_info = pb_len(4, "serve") + pb_len(5, "2.18.0")
    meta = pb_len(1, meta_info) + pb_len(2, tf_graph(nodes, functions))
    return pb_int(1, 1) + pb_len(2, meta)


def _saver_nodes() -> list[bytes]:
    # Every SavedModel has these; they must not be flagged.
    return [
        tf_node("saver_filename", "Placeholder"),
        tf_node("StatefulPartitionedCall_1", "SaveV2", ("saver_filename",)),
        tf_node("StatefulPartitionedCall_2", "RestoreV2", ("saver_filename",)),
    ]


def _serve_nodes(extra: list[bytes] = ()) -> list[bytes]:  # type: ignore[assignment]
    return [
        tf_node("serving_default_x", "Placeholder"),
        tf_node("dense/kernel", "VarHandleOp"),
        tf_node("StatefulPartitionedCall", "StatefulPartitionedCall", ("serving_default_x",)),
        *extra,
        *_saver_nodes(),
    ]


def _serve_function(extra: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    return tf_function(
        "__inference_serve_42",
        [
            tf_node("MatMul", "MatMul", ("x", "kernel")),
            tf_node("Relu", "Relu", ("MatMul",)),
            *extra,
            tf_node("Identity", "Identity", ("Relu",)),
        ],
    )


def tensorflow(c: CorpusLike) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"tensorflow/{name}",
            blob,
            fmt="tensorflow",
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add(
        "savedmodel_benign/saved_model.pb",
        saved_model(_serve_nodes(), [_serve_function()]),
        "SavedModel: dense layer, serving function, saver subgraph (SaveV2/RestoreV2)",
        "clean",
    )
    add(
        "savedmodel_py_function/saved_model.pb",
        saved_model(
            _serve_nodes(),
            [_serve_function([tf_node("EagerPyFunc", "EagerPyFunc", ("Relu",), token="pyfunc_0")])],
        ),
        "tf.py_function compiled into the serving function as an EagerPyFunc node",
        "suspicious",
    )
    add(
        "savedmodel_numpy_function/saved_model.pb",
        saved_model(
            _serve_nodes([tf_node("PyFunc", "PyFunc", ("serving_default_x",), token="pyfunc_1")]),
            [_serve_function()],
        ),
        "tf.numpy_function in the main graph as a PyFunc node",
        "suspicious",
    )
    add(
        "savedmodel_write_file/saved_model.pb",
        saved_model(
            _serve_nodes(),
            [_serve_function([tf_node("WriteFile", "WriteFile", ("path", "Relu"))])],
        ),
        "WriteFile op writes a file whenever the serving function runs",
        "suspicious",
    )
    add(
        "savedmodel_read_file/saved_model.pb",
        saved_model(
            _serve_nodes(),
            [_serve_function([tf_node("ReadFile", "ReadFile", ("path",))])],
        ),
        "ReadFile op reads a file by path into the model's output",
        "suspicious",
    )
    add(
        "savedmodel_print_to_file/saved_model.pb",
        saved_model(
            _serve_nodes(),
            [
                _serve_function(
                    [tf_node("PrintV2", "PrintV2", ("Relu",), output_stream="file:///tmp/x")]
                )
            ],
        ),
        "PrintV2 with a file:// output_stream appends to a file",
        "suspicious",
    )
    add(
        "frozen_graph_pyfunc_stateless.pb",
        tf_graph(
            [
                tf_node("input", "Placeholder"),
                tf_node("hook", "PyFuncStateless", ("input",), token="pyfunc_7"),
            ]
        ),
        "frozen GraphDef (.pb) with a PyFuncStateless node",
        "suspicious",
    )
    add(
        "frozen_graph_benign.pb",
        tf_graph([tf_node("input", "Placeholder"), tf_node("out", "Relu", ("input",))]),
        "frozen GraphDef (.pb) with native ops only",
        "clean",
    )
    add(
        "savedmodel_text_pyfunc/saved_model.pbtxt",
        b"saved_model_schema_version: 1\nmeta_graphs {\n  graph_def {\n"
        b'    node { name: "x" op: "Placeholder" }\n'
        b'    node { name: "hook" op: "PyFunc" input: "x" }\n  }\n}\n',
        "SavedModel in the text format with a PyFunc node",
        "suspicious",
    )
    benign = saved_model(_serve_nodes(), [_serve_function()])
    add(
        "savedmodel_truncated/saved_model.pb",
        benign[: len(benign) // 2],
        "SavedModel cut in half: a MetaGraphDef that claims bytes past the end",
        "malformed",
    )
    add(
        "savedmodel_name_only/saved_model.pb",
        b'{"this": "is not a SavedModel"}\n',
        "file named saved_model.pb whose bytes are JSON (TensorFlow opens it by name)",
        "suspicious",
    )


# --------------------------------------------------------------------------------------------
# NeMo (.nemo: a tar of model_config.yaml + model_weights.ckpt)
# --------------------------------------------------------------------------------------------

_NEMO_CONFIG = """\
target: nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE
sample_rate: 16000
preprocessor:
  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  sample_rate: 16000
  features: 80
encoder:
  _target_: nemo.collections.asr.modules.ConformerEncoder
  feat_in: 80
  n_layers: 2
decoder:
  _target_: nemo.collections.asr.modules.ConvASRDecoder
  feat_in: 176
  num_classes: 128
optim:
  name: adamw
  lr: 0.001
  sched:
    name: CosineAnnealing
"""


def nemo(c: CorpusLike, kit: Kit) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"nemo/{name}", blob, fmt="nemo", technique=technique, expected=expected, reference=ref
        )

    def archive(config: str, weights: bytes | None = None) -> bytes:
        members = [("./model_config.yaml", config.encode())]
        members.append(
            ("./model_weights.ckpt", kit.benign_torch_zip if weights is None else weights)
        )
        members.append(("./tokenizer.model", b"\x0a\x03<s>"))
        return kit.tar_of(members)

    add("benign.nemo", archive(_NEMO_CONFIG), "ASR model config with nemo.* targets", "clean")
    add(
        "target_builtins_exec.nemo",
        archive(
            _NEMO_CONFIG.replace("nemo.collections.asr.modules.ConvASRDecoder", "builtins.exec")
            + "  _args_: ['1+1']\n"
        ),
        "Hydra _target_ builtins.exec instantiated by restore_from",
        "malicious",
        "CVE-2025-23304",
    )
    add(
        "target_os_system_nested.nemo",
        archive(_NEMO_CONFIG + "callbacks:\n  - _target_: os.system\n    _args_: ['true']\n"),
        "Hydra _target_ os.system in a nested list of configs",
        "malicious",
        "CVE-2025-23304",
    )
    add(
        "target_unknown_module.nemo",
        archive(_NEMO_CONFIG + "augmentor:\n  _target_: acme_speech.augment.Reverb\n"),
        "Hydra _target_ naming a third-party module (its code runs on import)",
        "suspicious",
        "CVE-2025-23304",
    )
    add(
        "malicious_weights.nemo",
        archive(_NEMO_CONFIG, kit.malicious_torch_zip),
        "benign config, model_weights.ckpt whose data.pkl calls posix.system",
        "malicious",
    )
    add(
        "target_builtins_eval.tar_gz.nemo",
        gzip.compress(
            archive(_NEMO_CONFIG + "hook:\n  _target_: builtins.eval\n  _args_: ['1+1']\n"),
            mtime=0,
        ),
        "gzip-compressed .nemo (tar.gz) with a builtins.eval target",
        "malicious",
        "CVE-2025-23304",
    )
    add(
        "no_model_config.nemo",
        kit.tar_of([("./model_weights.ckpt", kit.benign_torch_zip)]),
        ".nemo without model_config.yaml (restore_from cannot read it)",
        "malformed",
    )
    add(
        "name_only.nemo",
        b"This is not a NeMo archive.\n" * 4,
        "text file named .nemo (NeMo opens it by name)",
        "suspicious",
    )


def hydra(c: CorpusLike) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"hydra/{name}",
            blob,
            fmt="hydra-config",
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add(
        "nemo2_benign/context/model.yaml",
        b"_target_: nemo.collections.llm.gpt.model.llama.LlamaModel\n"
        b"config:\n  _target_: nemo.collections.llm.gpt.model.llama.Llama32Config1B\n",
        "NeMo 2 checkpoint context with nemo.* targets",
        "clean",
    )
    add(
        "nemo2_exec/context/model.yaml",
        b"_target_: nemo.collections.llm.gpt.model.llama.LlamaModel\n"
        b"config:\n  _target_: builtins.exec\n  _args_: ['1+1']\n",
        "NeMo 2 checkpoint context whose nested _target_ is builtins.exec",
        "malicious",
        "CVE-2025-23304",
    )
    add(
        "uni2ts_os_system/config.json",
        json.dumps({"module_kwargs": {"_target_": "os.system", "_args_": ["true"]}}).encode(),
        "config.json next to safetensors weights, handed to hydra.utils.instantiate",
        "malicious",
        "CVE-2026-22584",
    )
    add(
        "unparsable/config.yaml",
        b"_target_: nemo.core.Thing\nparams: [1, 2\n",
        "a config with _target_ keys that does not parse",
        "malformed",
    )


# --------------------------------------------------------------------------------------------
# skops (.skops: a zip of schema.json + .npy members)
# --------------------------------------------------------------------------------------------


def _sk_obj(module: str, cls: str, attrs: dict[str, object]) -> dict[str, object]:
    return {
        "__class__": cls,
        "__module__": module,
        "__loader__": "ObjectNode",
        "__id__": 1,
        "content": {
            "__class__": "dict",
            "__module__": "builtins",
            "__loader__": "DictNode",
            "content": attrs,
            "key_types": {
                "__class__": "list",
                "__module__": "builtins",
                "__loader__": "ListNode",
                "content": [],
            },
        },
    }


def _sk_json(value: object) -> dict[str, object]:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _sk_array(file: str) -> dict[str, object]:
    return {
        "__class__": "ndarray",
        "__module__": "numpy",
        "__loader__": "NdArrayNode",
        "type": "numpy",
        "file": file,
    }


def _sk_function(module: str, name: str) -> dict[str, object]:
    return {
        "__class__": "function",
        "__module__": module,
        "__loader__": "FunctionNode",
        "content": {"module_path": module, "function": name},
    }


def _skops_file(kit: Kit, root: dict[str, object], extra: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    schema = dict(root)
    schema["protocol"] = 2
    schema["_skops_version"] = "0.11.0"
    members = [("schema.json", json.dumps(schema, indent=1).encode())]
    members.append(("coef.npy", kit.npy_f32((1, 4))))
    return kit.zip_of(members + list(extra))


def _sk_logreg(extra_attrs: dict[str, object] | None = None) -> dict[str, object]:
    attrs: dict[str, object] = {
        "C": _sk_json(1.0),
        "solver": _sk_json("lbfgs"),
        "coef_": _sk_array("coef.npy"),
    }
    attrs.update(extra_attrs or {})
    return _sk_obj("sklearn.linear_model._logistic", "LogisticRegression", attrs)


def skops(c: CorpusLike, kit: Kit) -> None:
    def add(name: str, blob: bytes, technique: str, expected: str, ref: str | None = None) -> None:
        c.add(
            f"skops/{name}",
            blob,
            fmt="skops",
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add(
        "logreg_benign.skops",
        _skops_file(kit, _sk_logreg()),
        "LogisticRegression with JSON and ndarray attributes",
        "clean",
    )
    add(
        "function_builtins_eval.skops",
        _skops_file(kit, _sk_logreg({"hook": _sk_function("builtins", "eval")})),
        "FunctionNode naming builtins.eval (an untrusted type skops.io.load would resolve)",
        "malicious",
    )
    add(
        "function_posix_system.skops",
        _skops_file(kit, _sk_logreg({"hook": _sk_function("posix", "system")})),
        "FunctionNode naming posix.system",
        "malicious",
    )
    add(
        "object_unknown_class.skops",
        _skops_file(kit, _sk_logreg({"extra": _sk_obj("acme_ml.models", "Custom", {})})),
        "ObjectNode of a class outside sklearn/numpy/scipy (its module is imported on load)",
        "suspicious",
    )
    method = {
        "__class__": "method",
        "__module__": "builtins",
        "__loader__": "MethodNode",
        "content": {
            "func": "__reduce_ex__",
            "obj": _sk_obj("sklearn.linear_model._logistic", "LogisticRegression", {}),
        },
    }
    add(
        "method_node_attribute.skops",
        _skops_file(kit, _sk_logreg({"hook": method})),
        "MethodNode naming a dunder method of a trusted object (attribute access gadget)",
        "suspicious",
        "CVE-2025-54413",
    )
    operator_node = {
        "__class__": "attrgetter",
        "__module__": "operator",
        "__loader__": "OperatorFuncNode",
        "attrs": {"_attrs": ["__globals__"]},
    }
    add(
        "operator_func_node.skops",
        _skops_file(kit, _sk_logreg({"hook": operator_node})),
        "OperatorFuncNode (operator.attrgetter) reaching __globals__",
        "malicious",
        "CVE-2025-54412",
    )
    add(
        "pickle_member.skops",
        _skops_file(kit, _sk_logreg(), [("extra.pkl", b"\x80\x04N.")]),
        "a pickle member skops never writes (for tools that unpickle every .pkl)",
        "suspicious",
    )
    add(
        "no_schema.skops",
        kit.zip_of([("coef.npy", kit.npy_f32((1, 4)))]),
        "zip named .skops without schema.json (skops.io cannot load it)",
        "malformed",
    )
    add(
        "joblib_pickle_named.skops",
        b"\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.",
        "a pickle named .skops (skops' model card loader fell back to joblib for it)",
        "suspicious",
        "CVE-2025-54886",
    )
    add(
        "name_only.skops",
        b"not a zip archive, only named like one\n",
        "text file named .skops",
        "suspicious",
    )


# --------------------------------------------------------------------------------------------
# TorchScript (a torch zip with code/ members compiled by torch.jit.load)
# --------------------------------------------------------------------------------------------

_TS_BENIGN = """\
class Tiny(Module):
  __parameters__ = ["weight", ]
  __buffers__ = []
  weight : Tensor
  training : bool
  def forward(self: __torch__.Tiny,
    x: Tensor) -> Tensor:
    weight = self.weight
    return torch.relu(torch.matmul(x, weight))
"""


def torchscript(c: CorpusLike, kit: Kit) -> None:
    def add(
        name: str, code: str | bytes, technique: str, expected: str, ref: str | None = None
    ) -> None:
        raw = code.encode() if isinstance(code, str) else code
        blob = kit.zip_of(
            [
                ("tiny/data.pkl", b"\x80\x02}q\x00."),
                ("tiny/code/__torch__.py", raw),
                ("tiny/constants.pkl", b"\x80\x02)."),
                ("tiny/version", b"3\n"),
            ]
        )
        c.add(
            f"torchscript/{name}",
            blob,
            fmt="torchscript",
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add("tiny_benign.pt", _TS_BENIGN, "scripted module: matmul + relu", "clean")
    add(
        "code_os_system.pt",
        _TS_BENIGN.replace(
            "    weight = self.weight\n", '    weight = self.weight\n    os.system("true")\n'
        ).replace("class Tiny", "import os\nclass Tiny"),
        "code/ member imports os and calls os.system (torch.package-style loaders import it)",
        "malicious",
    )
    add(
        "code_builtins_exec.pt",
        _TS_BENIGN.replace(
            "    weight = self.weight\n", '    weight = self.weight\n    exec("1+1")\n'
        ),
        "code/ member calls exec",
        "malicious",
    )
    add(
        "code_custom_op_namespace.pt",
        _TS_BENIGN.replace("torch.relu(", "ops.acme_native.run("),
        "code/ calls an operator from a custom namespace (needs a native library)",
        "suspicious",
    )
    add(
        "code_aten_from_file.pt",
        _TS_BENIGN.replace(
            "weight = self.weight", 'weight = torch.ops.aten.from_file("/etc/passwd", False, 64)'
        ),
        "code/ reads a file by path with aten::from_file",
        "suspicious",
    )
    add(
        "code_syntax_error.pt",
        "class Tiny(Module):\n  def forward(self, x:\n",
        "code/ member that is not valid Python/TorchScript syntax",
        "malformed",
    )


# --------------------------------------------------------------------------------------------
# Recognised, not analysed: `unsupported` with what would be needed
# --------------------------------------------------------------------------------------------


def _flatbuffer_tflite() -> bytes:
    # root table offset, "TFL3" file identifier, then a tiny (not loadable) table body
    return struct.pack("<I", 16) + b"TFL3" + b"\x00" * 8 + struct.pack("<I", 3) + b"\x00" * 44


def unsupported(c: CorpusLike) -> None:
    def add(
        name: str,
        blob: bytes,
        fmt: str,
        technique: str,
        expected: str = "unsupported",
        ref: str | None = None,
    ) -> None:
        c.add(
            f"unsupported/{name}",
            blob,
            fmt=fmt,
            technique=technique,
            expected=expected,
            reference=ref,
        )

    add(
        "model.tflite",
        _flatbuffer_tflite(),
        "tflite",
        "TFLite flatbuffer (custom and Flex ops not inspected)",
    )
    add(
        "name_only.tflite",
        b"\x00" * 64,
        "tflite",
        "file named .tflite without the TFL3 identifier",
        "suspicious",
    )
    add(
        "openvino/model.xml",
        b'<?xml version="1.0"?>\n<net name="tiny" version="11">\n <layers>\n'
        b'  <layer id="0" name="x" type="Parameter" version="opset1"/>\n </layers>\n</net>\n',
        "openvino-ir",
        "OpenVINO IR (extension layers not inspected)",
    )
    add(
        "model.pdmodel",
        pb_len(1, pb_int(1, 0) + pb_int(2, -1 & 0xFFFFFFFFFFFFFFFF)) + pb_len(4, pb_int(1, 0)),
        "paddle",
        "PaddlePaddle ProgramDesc (ops not inspected)",
    )
    add(
        "model.mlmodel",
        pb_int(1, 4) + pb_len(2, pb_len(1, pb_len(1, "input"))),
        "coreml",
        "CoreML model specification (custom layers not inspected)",
    )
    add(
        "model.llamafile",
        b"MZqFpD='\n\n\x00\x00\x00\x00" + b"#!/bin/sh\nexec true\n" + b"\x00" * 32,
        "llamafile",
        "llamafile: an Actually Portable Executable with a GGUF inside (native code)",
    )
    add(
        "model.t7",
        struct.pack("<ii", 4, 1)
        + struct.pack("<i", 3)
        + b"V 1"
        + struct.pack("<i", 17)
        + b"torch.FloatTensor"
        + b"\x00" * 16,
        "torch7",
        "Lua Torch7 serialized object",
    )
    add(
        "model.rds",
        gzip.compress(
            b"X\n\x00\x00\x00\x03\x00\x04\x04\x00\x00\x03\x05\x00" + b"\x00" * 16, mtime=0
        ),
        "r-rds",
        "R serialized object (gzip .rds); unserialize can run promises",
        ref="CVE-2024-27322",
    )
    add("name_only.rds", b"just text, not R data\n", "r-rds", "text file named .rds", "suspicious")
    add(
        "xgboost_booster.pkl",
        b"\x80\x03cxgboost.core\nBooster\nq\x00)\x81q\x01}q\x02X\x06\x00\x00\x00handleq\x03"
        b"C\x04binfq\x04sb.",
        "xgboost-pickle",
        "pickled XGBoost Booster: its raw booster bytes go to libxgboost (pickle scanner: "
        "global outside the allowlist)",
        "suspicious",
    )
    add("model.cbm", b"CBM1" + b"\x00" * 60, "catboost", "CatBoost native model file")
    add(
        "lightgbm_model.txt",
        b"tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n",
        "lightgbm",
        "LightGBM text model (claimed by content, any name)",
    )
