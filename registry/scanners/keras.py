"""Keras model files: `.keras` zip archives and legacy HDF5 files with a `model_config`.

Loading a Keras model *deserializes its config*: every `{"module", "class_name", "config"}`
object in `config.json` (or in the HDF5 `model_config` / `training_config` attributes) is
imported by name and instantiated. That is the attack surface; the weights are plain HDF5
datasets. This scanner reads the config JSON only (h5py reads attributes, never code) and
judges every serialized object in it:

* Lambda layers and `__lambda__` functions carry marshalled bytecode: malicious
  (CVE-2024-3660; HDF5 files ignore `safe_mode`, CVE-2025-9905).
* A `module` outside Keras is an import of arbitrary code (CVE-2025-1550): malicious for
  modules that execute, import or touch files (`builtins`, `os`, `subprocess`, ...),
  suspicious otherwise (custom layers, `__main__`).
* In-namespace gadgets that get past `safe_mode`: `enable_unsafe_deserialization`
  (CVE-2025-9906), `get_file` (CVE-2025-8747), `TFSMLayer` (CVE-2026-1462),
  `TorchModuleWrapper` (torch.load of pickled bytes), `load_model` (nested load), and
  `TFOpLambda` naming TensorFlow file/IO/library functions.
* Every other class must be on an allowlist of built-in layers, initializers, regularizers,
  constraints, dtype policies, optimizers, losses and metrics; anything else is suspicious.
  ``tensorflow.keras.*`` modules are Keras (`keras_names.keras_module`).
* Gadget and dangerous module names where Keras does *not* resolve names (other settings,
  dicts without ``config``, ``metadata.json``) are reported too, as suspicious and low, with
  ``"resolved": false`` (`keras_names`); where Keras resolves them they are malicious.
* `.keras` members Keras never reads, and scripts or executables anywhere in the archive, are
  suspicious (`keras_members`).

Routing is by content: a zip whose root holds `config.json` / `model.weights.h5` /
`metadata.json`, or an HDF5 superblock (at 0 or a power-of-two user-block offset) whose file
has a `model_config` attribute. The file name only adds (`.keras` zips with leading bytes).
`.keras` zips are read with the strict zip reader (`containers.zip_reader`), as pickles are.

Why this module is over 600 lines: half of it is the allowlists and gadget tables the config
walk judges against; the walk, the tables and the two readers (zip, HDF5) change together when
Keras adds a serialized type. What could stand alone already does (`keras_names`: where names
resolve; `keras_members`: archive members). The natural next cut, if it grows, is the config
walk and its tables (`keras_config.py`) apart from the file readers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.scanners.base import (
    FileVerdict,
    FindingList,
    JSONValue,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
)
from registry.scanners.claims import KERAS_SUFFIX, ZIP_MAGIC, hdf5_offset, named
from registry.scanners.containers.issues import ContainerError, Issue
from registry.scanners.containers.zip_reader import ZipEntry, read_zip, read_zip_member
from registry.scanners.keras_members import member_findings
from registry.scanners.keras_names import (
    KERAS_MODULE_ROOTS,
    InertReference,
    inert_references,
    keras_module,
    module_root,
)

SCANNER_ID = "keras"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "keras"
RULESET_VERSION = "2026-12-05"

KERAS_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})
#: Keras itself reads `config.json` and the weights; `metadata.json` alone is too generic.
KERAS_CLAIMING_MEMBERS = frozenset({"config.json", "model.weights.h5"})
MAX_JSON_DEPTH = 512
MAX_EVIDENCE = 20

# Modules a Keras config may name: Keras itself (`keras`, `keras.layers`, `keras.src.*`), the
# Keras 2 standalone package and TensorFlow's re-export (`keras_names.KERAS_MODULE_ROOTS`,
# `keras_module`). keras_hub / keras_nlp / keras_cv are third-party code to this scanner (they
# run on import and their layers are not reviewed here): suspicious.

# Module roots whose import or call is code execution, file access or network access.
DANGEROUS_MODULE_ROOTS = frozenset(
    {
        "builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "importlib",
        "runpy", "code", "codeop", "pickle", "_pickle", "marshal", "shutil", "socket", "ctypes",
        "pty", "webbrowser", "types", "operator", "functools", "pathlib", "io", "_io",
        "tempfile", "urllib", "http", "ftplib", "smtplib", "requests", "multiprocessing",
        "threading", "asyncio", "pdb", "timeit", "pydoc", "platform", "signal", "pip",
        "setuptools", "distutils", "pkgutil", "zipimport", "inspect", "dill", "cloudpickle",
        "joblib", "torch", "numpy", "tensorflow", "jax",
    }
)  # fmt: skip

# Built-in Keras classes whose configs hold only numbers, strings and nested allowed objects.
ALLOWED_CLASSES = frozenset(
    {
        # models
        "Sequential", "Functional", "Model",
        # core / dense / embedding
        "InputLayer", "Input", "Dense", "EinsumDense", "Embedding", "Identity", "Masking",
        "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
        # convolution and pooling
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
        "Convolution1D", "Convolution2D", "Convolution3D",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
        "AveragePooling2D", "AveragePooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
        "AvgPool1D", "AvgPool2D", "AvgPool3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
        "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalAveragePooling3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAvgPool1D",
        "GlobalAvgPool2D",
        # normalization and regularization layers
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
        "RMSNormalization", "SpectralNormalization", "Dropout", "SpatialDropout1D",
        "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
        "AlphaDropout", "ActivityRegularization",
        # merging
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
        # attention
        "MultiHeadAttention", "GroupedQueryAttention", "GroupQueryAttention", "Attention",
        "AdditiveAttention",
        # reshaping
        "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D",
        "Cropping3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D",
        "UpSampling2D", "UpSampling3D",
        # recurrent
        "LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "RNN",
        "StackedRNNCells", "Bidirectional", "TimeDistributed", "ConvLSTM1D", "ConvLSTM2D",
        "ConvLSTM3D",
        # preprocessing without file access (lookup layers are checked separately)
        "Rescaling", "Normalization", "Resizing", "CenterCrop", "Discretization",
        "CategoryEncoding", "HashedCrossing", "Hashing", "StringLookup", "IntegerLookup",
        "TextVectorization",
        # initializers
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
        "LecunNormal", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
        "TruncatedNormal", "VarianceScaling", "Orthogonal", "IdentityInitializer",
        "STFTInitializer",
        # regularizers and constraints
        "L1", "L2", "L1L2", "OrthogonalRegularizer", "MaxNorm", "MinMaxNorm", "NonNeg",
        "UnitNorm",
        # dtype policies and serialization tokens
        "DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy",
        "Policy", "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__keras_tensor__",
        "__ellipsis__", "__slice__", "TensorShape",
        # optimizers and schedules
        "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl",
        "Lion", "Adafactor", "LossScaleOptimizer", "ExponentialDecay", "PiecewiseConstantDecay",
        "PolynomialDecay", "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts",
        # losses
        "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError", "BinaryCrossentropy", "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy", "BinaryFocalCrossentropy",
        "CategoricalFocalCrossentropy", "Hinge", "SquaredHinge", "CategoricalHinge",
        "KLDivergence", "Poisson", "Huber", "LogCosh", "CosineSimilarity", "Dice", "Tversky",
        "CTC",
        # metrics
        "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
        "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "AUC", "Precision",
        "Recall", "Mean", "Sum", "MeanMetricWrapper", "RootMeanSquaredError", "F1Score",
        "FBetaScore", "MeanIoU", "IoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU",
        "TruePositives", "TrueNegatives", "FalsePositives", "FalseNegatives", "R2Score",
    }
)  # fmt: skip

# Functions a config may name (`{"class_name": "function", "config": NAME}` or a string
# activation): activations, losses and metrics.
ALLOWED_FUNCTIONS = frozenset(
    {
        "relu", "relu6", "sigmoid", "softmax", "softplus", "softsign", "tanh", "selu", "elu",
        "exponential", "gelu", "silu", "swish", "hard_sigmoid", "hard_silu", "hard_swish",
        "leaky_relu", "log_softmax", "linear", "mish", "celu", "glu", "log_sigmoid",
        "sparse_plus", "sparsemax", "squareplus", "tanh_shrink", "hard_tanh", "hard_shrink",
        "soft_shrink", "threshold", "sparse_sigmoid",
        "mean_squared_error", "mse", "mean_absolute_error", "mae",
        "mean_absolute_percentage_error", "mape", "mean_squared_logarithmic_error", "msle",
        "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
        "binary_focal_crossentropy", "categorical_focal_crossentropy", "hinge",
        "squared_hinge", "categorical_hinge", "kl_divergence", "kld", "poisson", "huber",
        "log_cosh", "logcosh", "cosine_similarity", "ctc", "dice", "tversky",
        "accuracy", "acc", "binary_accuracy", "categorical_accuracy",
        "sparse_categorical_accuracy", "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
    }
)  # fmt: skip

LAMBDA_CLASSES = frozenset({"Lambda", "__lambda__"})
#: The keys of a serialized object whose string values Keras resolves to code.
_RESOLVED_KEYS = frozenset({"class_name", "module", "registered_name", "spec_name"})


@dataclass(frozen=True, slots=True)
class _Gadget:
    rule: str
    reference: str | None
    why: str


# In-namespace names that defeat safe_mode; matched on class names, function names and the last
# segment of a dotted or `pkg>name` reference.
GADGETS: Mapping[str, _Gadget] = {
    "enable_unsafe_deserialization": _Gadget(
        "keras.gadget.unsafe-deserialization",
        "CVE-2025-9906",
        "turns safe_mode off while the config is deserialized, so a later Lambda runs",
    ),
    "get_file": _Gadget(
        "keras.gadget.get-file",
        "CVE-2025-8747",
        "downloads a file to an attacker-chosen path while the model loads",
    ),
    "TFSMLayer": _Gadget(
        "keras.gadget.tfsm-layer",
        "CVE-2026-1462",
        "loads a TensorFlow SavedModel from an attacker-chosen path",
    ),
    "TorchModuleWrapper": _Gadget(
        "keras.gadget.torch-module-wrapper",
        None,
        "rebuilds a torch module with torch.load on pickled bytes from the config",
    ),
    "load_model": _Gadget(
        "keras.gadget.load-model",
        None,
        "loads a second model (outside this scan) while the first one loads",
    ),
}

# TFOpLambda (tf.keras 2) resolves `function` to any symbol of the TensorFlow API.
TF_OP_DANGEROUS = re.compile(
    r"^(?:compat\.v1\.)?(?:io\.|raw_ops\.|py_function|numpy_function|py_func|saved_model\.|"
    r"summary\.|load_library|load_op_library|experimental\.|debugging\.|print|keras\.|"
    r"data\.experimental\.|distribute\.|config\.|lookup\.|sysconfig\.|gfile\.)"
)
TF_OP_LAMBDA_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})
LOOKUP_CLASSES = frozenset({"StringLookup", "IntegerLookup", "TextVectorization"})
ACTIVATION_KEYS = frozenset({"activation", "recurrent_activation"})


class _Malformed(Exception):
    def __init__(self, rule: str, message: str, evidence: Mapping[str, JSONValue] | None = None):
        super().__init__(message)
        self.rule = rule
        self.evidence: Mapping[str, JSONValue] = evidence or {}


class _Result(FindingList):
    def __init__(self) -> None:
        super().__init__(SCANNER_ID)


def _malformed(rule: str, message: str, **evidence: JSONValue) -> FileVerdict:
    result = _Result()
    result.add(Verdict.MALFORMED, rule, Severity.HIGH, message, evidence=evidence)
    return result.verdict()


# --- sniffing ---------------------------------------------------------------------------------


def _first_local_name(head: bytes) -> str | None:
    """The name in the zip's first local file header (offset 0), if the head holds it."""
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return None
    name_len = int.from_bytes(head[26:28], "little")
    raw = head[30 : 30 + name_len]
    if len(raw) != name_len:
        return None
    return raw.decode("utf-8", "replace")


def _zip_names(target: ScanTarget, limits: ScanLimits) -> set[str] | None:
    try:
        with target.open() as fh:
            archive = read_zip(fh, target.size, limits)
    except (ContainerError, OSError):
        return None
    return {entry.name for entry in archive.entries}


def _h5py() -> Any:
    # Lazy: h5py is heavy and only .h5 files need it.
    import h5py  # type: ignore[import-untyped]  # noqa: PLC0415  # h5py ships no type information

    return h5py


def _read_h5_attrs(target: ScanTarget, limits: ScanLimits) -> dict[str, str | None]:
    """`model_config` and `training_config` as text (None when absent). Raises _Malformed."""
    h5py = _h5py()
    out: dict[str, str | None] = {}
    try:
        with target.open() as fh, h5py.File(fh, "r") as f:
            for name in ("model_config", "training_config"):
                if name not in f.attrs:
                    out[name] = None
                    continue
                size = int(f.attrs.get_id(name).get_storage_size())
                if size > limits.max_header_bytes:
                    raise _Malformed(
                        "keras.config.too-large",
                        f"HDF5 attribute {name} is {size} bytes, over the limit",
                        {"attribute": name, "bytes": size},
                    )
                value = f.attrs[name]
                out[name] = _attr_text(value)
    except _Malformed:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise _Malformed("keras.h5.malformed", f"not a readable HDF5 file: {exc}"[:200]) from exc
    return out


def _attr_text(value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed("keras.config.malformed", "HDF5 config is not UTF-8") from exc
    if isinstance(value, str):
        return value
    raise _Malformed(
        "keras.config.malformed",
        f"HDF5 config attribute has type {type(value).__name__}, not a string",
    )


# --- the config walk --------------------------------------------------------------------------


def _load_json(data: bytes | str, source: str) -> Any:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        value = json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise _Malformed(
            "keras.config.malformed", f"{source} is not valid JSON: {exc}"[:200]
        ) from exc
    if duplicates:
        raise _Malformed(
            "keras.config.duplicate-key",
            f"{source} repeats keys (readers disagree on which one wins)",
            {"keys": sorted(set(duplicates))[:MAX_EVIDENCE]},
        )
    return value


def _last_segment(name: str) -> str:
    return re.split(r"[.>]", name)[-1]


@dataclass(frozen=True, slots=True)
class _Object:
    """One serialized object: `{"module", "class_name", "config", "registered_name"}`."""

    class_name: str
    module: str | None
    registered: str | None
    config: Any
    function: str | None  # the function name of a `class_name: "function"` object
    is_function: bool
    spec_name: str | None  # a `__typespec__`'s class, resolved like `class_name`
    path: str
    layer: str | None  # the nearest enclosing layer name (this object's own, if it has one)
    where: dict[str, JSONValue]

    @classmethod
    def of(cls, node: Mapping[str, Any], path: str, layer: str | None) -> _Object:
        class_name: str = node["class_name"]
        module = node.get("module")
        registered = node.get("registered_name")
        config = node.get("config")
        if isinstance(config, Mapping) and isinstance(config.get("name"), str):
            layer = config["name"]
        is_function = class_name == "function" or registered == "function"
        function = config if is_function and isinstance(config, str) else None
        where: dict[str, JSONValue] = {"path": path, "class_name": class_name}
        if layer is not None:
            where["layer"] = layer
        if isinstance(module, str):
            where["module"] = module
        if isinstance(registered, str):
            where["registered_name"] = registered
        if function is not None:
            where["function"] = function
        spec_name = node.get("spec_name") if class_name == "__typespec__" else None
        if isinstance(spec_name, str):
            where["spec_name"] = spec_name
        return cls(
            class_name=class_name,
            module=module if isinstance(module, str) else None,
            registered=registered if isinstance(registered, str) else None,
            config=config,
            function=function,
            is_function=is_function,
            spec_name=spec_name if isinstance(spec_name, str) else None,
            path=path,
            layer=layer,
            where=where,
        )


class _ConfigWalker:
    """Walks one config JSON document and records what it finds."""

    def __init__(
        self,
        result: _Result,
        limits: ScanLimits,
        source: str,
        *,
        legacy: bool,
        deserialized: bool = True,
    ):
        self.result = result
        self.limits = limits
        self.source = source  # archive member or "attribute model_config"
        self.member = source if not source.startswith("attribute ") else None
        self.legacy = legacy  # HDF5: safe_mode is ignored by Keras (CVE-2025-9905)
        self.deserialized = deserialized  # False: Keras reads the document as plain data
        self.items = 0
        self.inert = 0  # inert references seen (only the first MAX_EVIDENCE are listed)
        self.judged_paths: set[str] = set()  # strings inside objects that `_object` judged
        self.resolved_gadget = False  # whether the last `_object` reported a gadget

    def walk(self, document: Any) -> None:
        self._visit(document, "$", 0, None)
        if self.inert > MAX_EVIDENCE:
            self._add(
                Verdict.SUSPICIOUS,
                "keras.name.inert",
                Severity.LOW,
                f"{self.inert - MAX_EVIDENCE} further gadget or module names in {self.source} "
                "where Keras does not resolve names",
                {"count": self.inert, "resolved": False},
            )

    def _visit(self, node: Any, path: str, depth: int, layer: str | None) -> None:
        if depth > MAX_JSON_DEPTH:
            raise _Malformed("keras.config.too-deep", f"{self.source} nests over {depth} levels")
        self.items += 1
        if self.items > self.limits.max_items:
            raise _Malformed("keras.config.too-large", f"{self.source} has too many items")
        if isinstance(node, dict):
            self._visit_dict(node, path, depth, layer)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._visit(value, f"{path}[{i}]", depth + 1, layer)
        elif isinstance(node, str) and path not in self.judged_paths:
            self._inert(node, path, layer)

    def _visit_dict(self, node: dict[str, Any], path: str, depth: int, layer: str | None) -> None:
        judged: frozenset[str] = frozenset()
        resolved_gadget = False
        # Keras deserializes a dict only when it has both keys (Keras 3 passes any other
        # dict through as data, Keras 2 refuses it): only then are its names resolved.
        if self.deserialized and isinstance(node.get("class_name"), str) and "config" in node:
            layer = self._object(node, path, layer)
            resolved_gadget = self.resolved_gadget
            if node["class_name"] in LAMBDA_CLASSES:
                return  # reported once; its subtree is the function itself
            judged = _RESOLVED_KEYS | ({"config"} if isinstance(node["config"], str) else set())
            if node["class_name"] in TF_OP_LAMBDA_CLASSES:
                self.judged_paths.add(f"{path}.config.function")
        for key, value in node.items():
            self._inert(key, f"{path}.{key}", layer, key=True)
            if key in judged and isinstance(value, str):
                # Judged as code by `_object`; a gadget name it did not resolve (one in a
                # module path, say) is still named, as inert.
                if not resolved_gadget:
                    self._inert(value, f"{path}.{key}", layer, gadgets_only=True)
                continue
            if self.deserialized and key in ACTIVATION_KEYS and isinstance(value, str):
                self._function_name(value, None, f"{path}.{key}", layer)
                continue
            self._visit(value, f"{path}.{key}", depth + 1, layer)

    def _inert(
        self,
        text: str,
        path: str,
        layer: str | None,
        *,
        key: bool = False,
        gadgets_only: bool = False,
    ) -> None:
        """Gadget and dangerous module names where Keras resolves no names: suspicious, low."""
        found = inert_references(
            text,
            gadgets=GADGETS.keys(),
            dangerous_roots=DANGEROUS_MODULE_ROOTS,
            bare_words=".vocabulary" not in path,  # vocabularies hold words such as `os`
        )
        for ref in found:
            if gadgets_only and ref.kind != "gadget":
                continue
            self.inert += 1
            if self.inert <= MAX_EVIDENCE:
                self._inert_finding(ref, path, layer, key=key)

    def _inert_finding(
        self, ref: InertReference, path: str, layer: str | None, *, key: bool
    ) -> None:
        evidence: dict[str, JSONValue] = {"path": path, "name": ref.name, "resolved": False}
        if layer is not None:
            evidence["layer"] = layer
        where = "a key" if key else "a value"
        if ref.kind == "gadget":
            gadget = GADGETS[ref.name]
            self._add(
                Verdict.SUSPICIOUS,
                "keras.gadget.inert",
                Severity.LOW,
                f"{ref.name} ({gadget.why}) is named in {where} at {path}, where Keras does not "
                "resolve names; a custom from_config or another loader might",
                evidence,
                reference=gadget.reference,
            )
            return
        self._add(
            Verdict.SUSPICIOUS,
            "keras.module.inert",
            Severity.LOW,
            f"{ref.name[:80]!r} names code that runs commands or imports, in {where} at {path}, "
            "where Keras does not resolve names",
            evidence,
        )

    def _add(
        self,
        verdict: Verdict,
        rule: str,
        severity: Severity,
        message: str,
        evidence: dict[str, JSONValue],
        *,
        reference: str | None = None,
    ) -> None:
        self.result.add(
            verdict,
            rule,
            severity,
            message,
            evidence=evidence,
            member=self.member,
            reference=reference,
        )

    def _object(self, node: Mapping[str, Any], path: str, layer: str | None) -> str | None:
        """Judge one serialized object; returns the layer name in scope below it."""
        obj = _Object.of(node, path, layer)
        self.resolved_gadget = False
        if obj.class_name in LAMBDA_CLASSES or obj.registered in LAMBDA_CLASSES:
            self._lambda(node, obj.where)
        elif self._gadget(obj):
            self.resolved_gadget = True
        elif not self._provenance(obj):
            self._class(obj)
        return obj.layer

    def _gadget(self, obj: _Object) -> bool:
        names = [obj.class_name]
        if obj.function is not None:
            names.append(obj.function)
        if obj.registered is not None:
            names.append(obj.registered)
        if obj.spec_name is not None:
            names.append(obj.spec_name)
        for name in names:
            gadget = GADGETS.get(_last_segment(name))
            if gadget is not None:
                self._add(
                    Verdict.MALICIOUS,
                    gadget.rule,
                    Severity.CRITICAL,
                    f"{name}: {gadget.why}",
                    {**obj.where, "resolved": True},
                    reference=gadget.reference,
                )
                return True
        return False

    def _provenance(self, obj: _Object) -> bool:
        """Module outside Keras, or a custom registered object. True if anything was said."""
        flagged = False
        module = obj.module
        if module == "builtins" and obj.is_function and obj.function in ALLOWED_FUNCTIONS:
            # Keras looks a `builtins` function up in its own activations, losses and metrics
            # first (how older Keras wrote built-in functions), so `relu` is Keras's relu.
            module = None
        if module is not None and keras_module(module) is None:
            flagged = True
            if module_root(module) in DANGEROUS_MODULE_ROOTS:
                self._add(
                    Verdict.MALICIOUS,
                    "keras.module.dangerous",
                    Severity.CRITICAL,
                    f"config imports {module}.{obj.function or obj.class_name}, "
                    "which runs code or touches files",
                    obj.where,
                    reference="CVE-2025-1550",
                )
                return True
            self._add(
                Verdict.SUSPICIOUS,
                "keras.module.not-allowed",
                Severity.HIGH,
                f"config imports from {module}, outside Keras: custom code runs on load",
                obj.where,
                reference="CVE-2025-1550",
            )
        registered = obj.registered
        if registered is not None and registered not in {obj.class_name, "function"}:
            package = registered.split(">", 1)[0] if ">" in registered else ""
            if package not in KERAS_MODULE_ROOTS:
                flagged = True
                self._add(
                    Verdict.SUSPICIOUS,
                    "keras.custom-object",
                    Severity.HIGH,
                    f"custom registered object {registered}: its code is not in this file",
                    obj.where,
                )
        return flagged

    def _class(self, obj: _Object) -> None:
        """A Keras-namespace object: allowlisted class, allowed function, or suspicious."""
        class_name, config = obj.class_name, obj.config
        if class_name in TF_OP_LAMBDA_CLASSES:
            self._tf_op_lambda(config, obj.where)
            return
        if obj.is_function:
            self._function_name(obj.function, obj.module, obj.path, obj.layer)
            return
        if class_name in LOOKUP_CLASSES and isinstance(config, Mapping):
            vocabulary = config.get("vocabulary")
            if isinstance(vocabulary, str):
                self._add(
                    Verdict.SUSPICIOUS,
                    "keras.lookup.vocabulary-path",
                    Severity.HIGH,
                    f"{class_name} reads its vocabulary from the path {vocabulary!r} on load",
                    {**obj.where, "vocabulary": vocabulary[:200]},
                )
        if class_name in ALLOWED_CLASSES:
            return
        module = keras_module(obj.module) if obj.module is not None else None
        if (
            module is not None
            and module.startswith(("keras.src.ops.", "keras.ops"))
            and re.fullmatch(r"[A-Z][A-Za-z0-9]*", class_name)
        ):
            return  # Keras tensor operations recorded in a functional graph
        self._add(
            Verdict.SUSPICIOUS,
            "keras.class.not-allowed",
            Severity.MEDIUM,
            f"{class_name} is not a built-in Keras class this scanner allows",
            obj.where,
        )

    def _function_name(
        self, name: str | None, module: str | None, path: str, layer: str | None
    ) -> None:
        if name is not None and name in ALLOWED_FUNCTIONS:
            return
        evidence: dict[str, JSONValue] = {"path": path, "function": name}
        if module is not None:
            evidence["module"] = module
        if layer is not None:
            evidence["layer"] = layer
        if name is not None and (gadget := GADGETS.get(_last_segment(name))) is not None:
            self._add(
                Verdict.MALICIOUS,
                gadget.rule,
                Severity.CRITICAL,
                f"{name}: {gadget.why}",
                evidence,
                reference=gadget.reference,
            )
            return
        self._add(
            Verdict.SUSPICIOUS,
            "keras.function.not-allowed",
            Severity.MEDIUM,
            f"function {name!r} is not a built-in activation, loss or metric",
            evidence,
        )

    def _lambda(self, node: Mapping[str, Any], where: dict[str, JSONValue]) -> None:
        config = node.get("config")
        code: str | None = None
        if isinstance(config, Mapping):
            function = config.get("function")
            if isinstance(function, Mapping) and isinstance(function.get("config"), Mapping):
                raw = function["config"].get("code")  # Keras 3: {"class_name": "__lambda__"}
                code = raw if isinstance(raw, str) else None
            elif isinstance(function, list) and function and isinstance(function[0], str):
                code = function[0]  # Keras 2: [base64 marshal, defaults, closure]
            elif isinstance(function, str):
                code = function
            if isinstance(config.get("function_type"), str):
                where["function_type"] = config["function_type"]
            raw_code = config.get("code")
            if code is None and isinstance(raw_code, str):
                code = raw_code  # the __lambda__ object itself
        if code is not None:
            where["code_bytes"] = len(code)
            where["code_sha256"] = hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()
        reference = "CVE-2025-9905" if self.legacy else "CVE-2024-3660"
        self._add(
            Verdict.MALICIOUS,
            "keras.lambda",
            Severity.CRITICAL,
            f"Lambda in layer {where.get('layer', '?')}: marshalled Python bytecode runs on load",
            where,
            reference=reference,
        )

    def _tf_op_lambda(self, config: object, where: dict[str, JSONValue]) -> None:
        function = config.get("function") if isinstance(config, Mapping) else None
        name = function if isinstance(function, str) else ""
        where["function"] = name
        name = name.removeprefix("tf.")
        if not name or TF_OP_DANGEROUS.match(name):
            self._add(
                Verdict.MALICIOUS,
                "keras.tf-op-lambda",
                Severity.CRITICAL,
                f"TFOpLambda calls tf.{name or '?'}: file, IO or native-library access on load",
                where,
            )
            return
        self._add(
            Verdict.SUSPICIOUS,
            "keras.tf-op-lambda",
            Severity.MEDIUM,
            f"TFOpLambda calls tf.{name}: tf_keras resolves any TensorFlow symbol by name",
            where,
        )


# --- the scanner ------------------------------------------------------------------------------


@dataclass
class KerasScanner:
    """`.keras` archives and legacy HDF5 Keras models, judged by their config JSON."""

    id: str = SCANNER_ID
    version: str = "1.0.0"
    ruleset_version: str = RULESET_VERSION

    def applies_to(self, target: ScanTarget) -> bool:
        if named(target, KERAS_SUFFIX):
            return True  # Keras opens `.keras` by name: other bytes so named are malformed
        head = target.head()
        limits = ScanLimits()
        if head.startswith(ZIP_MAGIC):
            first = _first_local_name(head)
            if first in KERAS_MEMBERS:
                return True
            names = _zip_names(target, limits)
            if names is not None and names & KERAS_CLAIMING_MEMBERS:
                return True
        if hdf5_offset(target, head) is None:
            return False
        try:
            attrs = _read_h5_attrs(target, limits)
        except _Malformed:
            return True  # an HDF5 signature that h5py cannot read: say malformed
        return attrs.get("model_config") is not None

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        head = target.head()
        try:
            if head.startswith(ZIP_MAGIC) or (
                named(target, KERAS_SUFFIX) and hdf5_offset(target, head) is None
            ):
                return self._scan_zip(target, limits)
            return self._scan_h5(target, limits)
        except _Malformed as exc:
            result = _Result()
            result.add(Verdict.MALFORMED, exc.rule, Severity.HIGH, str(exc), evidence=exc.evidence)
            return result.verdict()

    def _scan_zip(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        # The strict zip reader (the one the pickle scanner uses), not `zipfile`: an archive
        # that two readers would read differently is reported, not read one way.
        result = _Result()
        issues: list[Issue] = []
        try:
            with target.open() as fh:
                archive = read_zip(fh, target.size, limits, issues)
                self._check_members(archive.entries, result)
                result.items.extend(member_findings(fh, archive.entries, SCANNER_ID))
                configs = [e for e in archive.entries if e.name == "config.json"]
                if not configs:
                    _add_issues(result, issues)
                    result.add(
                        Verdict.MALFORMED,
                        "keras.config.missing",
                        Severity.HIGH,
                        "archive has no config.json",
                    )
                    return result.verdict()
                config = _load_json(_read_member(fh, configs[-1], limits, issues), "config.json")
                metadata = [
                    _load_json(_read_member(fh, meta, limits, issues), "metadata.json")
                    for meta in archive.entries
                    if meta.name == "metadata.json"
                ]
        except ContainerError as exc:
            return _refused(exc.issue)
        except OSError as exc:
            return _malformed("keras.zip.malformed", f"not a readable zip archive: {exc}"[:200])
        _add_issues(result, issues)
        self._check_config(config, "config.json", result, limits, legacy=False)
        for document in metadata:  # read as data: only inert names can be in it
            _ConfigWalker(result, limits, "metadata.json", legacy=False, deserialized=False).walk(
                document
            )
        return result.verdict()

    @staticmethod
    def _check_members(entries: Sequence[ZipEntry], result: _Result) -> None:
        seen: set[str] = set()
        duplicates: set[str] = set()
        for entry in entries:
            name = entry.name
            if name in seen:
                duplicates.add(name)
            seen.add(name)
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
                result.add(
                    Verdict.SUSPICIOUS,
                    "keras.zip.member-path",
                    Severity.HIGH,
                    f"archive member {name!r} would be written outside the extraction folder",
                    evidence={"member": name[:200]},
                )
        if duplicates:
            raise _Malformed(
                "keras.zip.duplicate-member",
                "archive repeats member names (readers disagree on which one is read)",
                {"members": sorted(duplicates)[:MAX_EVIDENCE]},
            )

    def _scan_h5(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        attrs = _read_h5_attrs(target, limits)
        result = _Result()
        model_config = attrs.get("model_config")
        if model_config is None:
            return _malformed("keras.config.missing", "HDF5 file has no model_config attribute")
        for name in ("model_config", "training_config"):
            text = attrs.get(name)
            if text is None:
                continue
            document = _load_json(text, f"attribute {name}")
            self._check_config(document, f"attribute {name}", result, limits, legacy=True)
        return result.verdict()

    @staticmethod
    def _check_config(
        document: Any, source: str, result: _Result, limits: ScanLimits, *, legacy: bool
    ) -> None:
        if source in {"config.json", "attribute model_config"} and not (
            isinstance(document, dict) and isinstance(document.get("class_name"), str)
        ):
            raise _Malformed("keras.config.malformed", f"{source} is not a serialized Keras object")
        _ConfigWalker(result, limits, source, legacy=legacy).walk(document)


def _read_member(fh: BinaryIO, entry: ZipEntry, limits: ScanLimits, issues: list[Issue]) -> bytes:
    """A member's bytes, never more than `max_header_bytes` whatever its header claims."""
    bound = limits.max_header_bytes
    if entry.size > bound:
        raise _Malformed(
            "keras.config.too-large",
            f"{entry.name} is {entry.size} bytes, over the limit",
            {"member": entry.name, "bytes": entry.size},
        )
    try:
        data, member_issues = read_zip_member(fh, entry, bound)
    except ContainerError as exc:
        if exc.issue.rule == "zip.member-too-large":
            raise _Malformed("keras.config.too-large", f"member is over {bound} bytes") from None
        raise
    issues.extend(member_issues)
    return data


def _refused(issue: Issue) -> FileVerdict:
    """The strict zip reader cannot read the archive (further): malformed, saying why."""
    if issue.rule == "zip.too-many-members":
        members = issue.evidence.get("count")
        return _malformed(
            "keras.zip.too-many-members",
            f"{members} archive members, over the limit",
            members=members,
        )
    return _malformed(
        "keras.zip.malformed",
        f"not a readable zip archive: {issue.message}"[:200],
        zip_rule=issue.rule,
        member=issue.member,
    )


def _add_issues(result: _Result, issues: list[Issue]) -> None:
    """What the strict zip reader reports about a readable archive, as the pickle scanner does."""
    for issue in issues:
        result.add(
            issue.verdict,
            issue.rule,
            issue.severity,
            issue.message,
            evidence=dict(issue.evidence),
            member=issue.member,
        )
