"""Which pickle globals a model checkpoint may name: an allowlist, plus labels for the dangerous.

The decision is the allowlist. Any global not listed here is at least `suspicious`
(`pickle.global.not-allowed`); the dangerous table only *labels* the worst of them `malicious`
(`pickle.global.dangerous`) so that a report says what the payload would have done. A name
missing from the dangerous table is therefore never admitted, only labelled less precisely.

Every allowed entry says whether the pickle may *call* it or only *refer* to it (a storage type
inside a torch persistent id, `numpy.ndarray` passed to `_reconstruct`, a dtype constant), and
whether its arguments need a check (`ArgCheck`), which the VM in `pickle_vm` performs.

Names are compared after the Python 2 renames that `pickle` applies (`__builtin__` becomes
`builtins`, `copy_reg` becomes `copyreg`); we apply them whatever the protocol, which is the
fail-closed reading.
"""

from __future__ import annotations

from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from registry.scanners.base import Severity, Verdict

#: Recorded with every scan; raise it whenever what the rules decide changes, so that
#: `modelctl rescan` (and the workers' start-up sweep) re-judges what older rules judged.
#: 2026-12-05: frames read like pickle.load(file), broken streams, unhashable keys, expansion
#: bombs, carried pickles, harmless builtins outside weights files, encrypted plain zips.
RULESET_VERSION = "2026-12-05"
RULE_ALLOWED = "pickle.global.allowed"
RULE_NOT_ALLOWED = "pickle.global.not-allowed"
RULE_DANGEROUS = "pickle.global.dangerous"
RULE_HARMLESS = "pickle.global.harmless"


class Use(StrEnum):
    """How an allowed global may appear."""

    CALL = "call"  # may be called (REDUCE / NEWOBJ / INST / OBJ) and referenced
    REFERENCE = "reference"  # may only be referenced; calling it is `not-allowed`


class ArgCheck(StrEnum):
    """Argument checks the VM applies to calls of some allowed globals."""

    LATIN1_ENCODE = "latin1-encode"  # _codecs.encode(<str literal>, 'latin1') only
    BYTES_LITERAL = "bytes-literal"  # bytes()/bytearray(): no args, a bytes literal, or latin1 str
    TORCH_HOOKS = "torch-hooks"  # backward_hooks argument must be an empty OrderedDict
    TORCH_STATE = "torch-state"  # hooks as above, and the state sets no dunder attribute
    TORCH_FROM_TYPE = "torch-from-type"  # _rebuild_from_type_v2: vetted func/new_type/state
    NO_ARGUMENTS = "no-arguments"  # cls() only: NEWOBJ with () as pickle writes plain objects


@dataclass(frozen=True, slots=True)
class AllowEntry:
    group: str
    use: Use = Use.CALL
    check: ArgCheck | None = None


@dataclass(frozen=True, slots=True)
class GlobalDecision:
    """The policy's answer for one (module, qualified name) pair."""

    verdict: Verdict  # CLEAN when allowed
    severity: Severity
    rule: str
    label: str  # what the global is / why it was refused, for the report
    use: Use | None = None  # None unless allowed
    check: ArgCheck | None = None
    loader: bool = False  # a deserializer: its bytes arguments are scanned as nested pickles

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.CLEAN


def _entries(
    group: str,
    module: str,
    names: Iterable[str],
    use: Use = Use.CALL,
    check: ArgCheck | None = None,
) -> dict[tuple[str, str], AllowEntry]:
    return {(module, n): AllowEntry(group, use, check) for n in names}


_SCALAR_TYPES = (
    "Byte",
    "Char",
    "Short",
    "Int",
    "Long",
    "Half",
    "Float",
    "Double",
    "BFloat16",
    "Bool",
)
_STORAGE_ONLY = (
    "ComplexFloat",
    "ComplexDouble",
    "QUInt8",
    "QInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
)
_DTYPES = (
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex32", "complex64", "complex128",
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16",
    "int1", "int2", "int3", "int4", "int5", "int6", "int7",
    "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
)  # fmt: skip
_QSCHEMES = (
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
)

#: The allowlist. Source of each group in its comment; see `EXCLUDED_FROM_TORCH` for what we
#: deliberately left out of torch's own list.
ALLOWED: Mapping[tuple[str, str], AllowEntry] = {
    # torch rebuild functions, from torch 2.13.0 `_weights_only_unpickler._get_allowed_globals()`
    # (its `_tensor_rebuild_functions()`), each read in torch/_utils.py: they build a tensor from
    # a storage, sizes and strides and call nothing given to them. backward_hooks must be an
    # empty OrderedDict (torch's own comment: "the general expectation"); hooks are callables.
    **_entries("torch-rebuild", "torch._utils", ("_rebuild_tensor",)),
    **_entries(
        "torch-rebuild",
        "torch._utils",
        ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_qtensor", "_rebuild_parameter"),
        check=ArgCheck.TORCH_HOOKS,
    ),
    **_entries(
        "torch-rebuild",
        "torch._utils",
        ("_rebuild_parameter_with_state",),
        check=ArgCheck.TORCH_STATE,
    ),
    **_entries(
        "torch-rebuild",
        "torch._utils",
        (
            "_rebuild_sparse_tensor",  # torch validates the indices after load
            "_rebuild_nested_tensor",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_device_tensor_from_cpu_tensor",
            "_rebuild_device_tensor_from_numpy",
        ),
    ),
    # `_rebuild_from_type_v2(func, new_type, args, state)` calls `func(*args)`: allowed only
    # with an allowed torch rebuild function as func, Tensor/Parameter as new_type, and a
    # state that sets no dunder attribute (checked by the VM).
    **_entries(
        "torch-rebuild", "torch._tensor", ("_rebuild_from_type_v2",), check=ArgCheck.TORCH_FROM_TYPE
    ),
    # torch value types from the same list: torch.Size(tuple), torch.device('cpu'),
    # torch.serialization._get_layout('torch.sparse_coo') (a dict lookup of layout objects).
    **_entries("torch-value", "torch", ("Size", "device")),
    **_entries("torch-value", "torch.serialization", ("_get_layout",)),
    # Classes torch pickles by reference (persistent ids name the storage type; new_type of
    # _rebuild_from_type_v2), from the same list. Reference only: calling a storage class
    # allocates whatever size it is given, and checkpoints never call them.
    **_entries(
        "torch-storage",
        "torch",
        [f"{t}Storage" for t in _SCALAR_TYPES + _STORAGE_ONLY] + ["Tensor"],
        Use.REFERENCE,
    ),
    **_entries(
        "torch-storage",
        "torch.cuda",
        [f"{t}Storage" for t in _SCALAR_TYPES + _STORAGE_ONLY[:2]],
        Use.REFERENCE,
    ),
    **_entries("torch-storage", "torch.storage", ("TypedStorage", "UntypedStorage"), Use.REFERENCE),
    **_entries("torch-storage", "torch.nn.parameter", ("Parameter",), Use.REFERENCE),
    # torch dtype and qscheme constants, from the same list: plain objects, not callable.
    **_entries("torch-dtype", "torch", _DTYPES + _QSCHEMES, Use.REFERENCE),
    # Containers: OrderedDict is what state_dict() returns (torch list and the issue);
    # Counter is in torch's list and is a dict subclass with no callable state.
    **_entries("containers", "collections", ("OrderedDict", "Counter")),
    # NumPy arrays as `ndarray.__reduce_ex__` writes them (numpy 1.x `numpy.core`, numpy 2.x
    # `numpy._core`; verified with numpy 2.4 `pickle.dumps` for protocols 2, 4 and 5):
    # _reconstruct(ndarray, shape, dtype) + BUILD, scalar(dtype, bytes), and protocol 5's
    # _frombuffer(buffer, dtype, shape, order). numpy.dtype(str, align, copy) builds dtypes.
    **_entries("numpy", "numpy.core.multiarray", ("_reconstruct", "scalar")),
    **_entries("numpy", "numpy._core.multiarray", ("_reconstruct", "scalar")),
    **_entries("numpy", "numpy.core.numeric", ("_frombuffer",)),
    **_entries("numpy", "numpy._core.numeric", ("_frombuffer",)),
    **_entries("numpy", "numpy", ("dtype",)),
    **_entries("numpy", "numpy", ("ndarray",), Use.REFERENCE),  # _reconstruct's subtype
    # joblib's NumpyArrayWrapper (joblib.numpy_pickle): a plain data record (subclass, shape,
    # order, dtype, allow_mmap, numpy_array_alignment_bytes) that NumpyPickler writes in place
    # of each ndarray as NEWOBJ(cls, ()) + BUILD(dict); its __init__ only stores attributes and
    # it defines no __setstate__/__reduce__. Only that empty construction is accepted; the VM
    # vets the BUILD state and delimits the array bytes that follow it the way
    # NumpyUnpickler.load_build reads them. The rest of joblib stays refused (a deserializer).
    **_entries(
        "joblib-array", "joblib.numpy_pickle", ("NumpyArrayWrapper",), check=ArgCheck.NO_ARGUMENTS
    ),
    # Python value types (the list; set, complex and bytearray are also in torch's):
    # protocols 0-1 pickle sets as set(list), complex via NEWOBJ, slices as slice(a, b, c).
    # bytearray(n)/bytes(n) would allocate n bytes, so only literal arguments are accepted;
    # bytes() with no argument is how protocol 2 writes b"".
    **_entries("python-value", "builtins", ("set", "frozenset", "complex", "slice")),
    **_entries("python-value", "builtins", ("bytearray", "bytes"), check=ArgCheck.BYTES_LITERAL),
    # datetime values reduce to cls(<bytes state>[, tzinfo]) (CPython Modules/_datetimemodule.c).
    **_entries("python-value", "datetime", ("datetime", "date", "time", "timedelta", "timezone")),
    # Protocol 2 writes non-empty bytes as _codecs.encode(<latin-1 text>, 'latin1')
    # (Lib/pickle.py save_bytes); torch's list has it. Any other codec can compute values
    # (rot13, base64, zlib), so the VM accepts only a str literal and the latin1 codec.
    **_entries("python-value", "_codecs", ("encode",), check=ArgCheck.LATIN1_ENCODE),
    # Value objects seen in real training state (run metadata, tracker ids): constructing them
    # parses a literal and runs nothing else. UUID pickles as NEWOBJ + BUILD {'int', 'is_safe'}
    # (Lib/uuid.py __getstate__/__setstate__), SafeUUID as an enum member, Decimal as
    # Decimal(<str>). The rest of the uuid module stays labelled dangerous (_get_command_stdout).
    **_entries("python-value", "uuid", ("UUID", "SafeUUID")),
    **_entries("python-value", "decimal", ("Decimal",)),
}

#: The names `__future__` defines for its features (Lib/__future__.py, Python 3.11).
_FUTURE_FEATURES = (
    "nested_scopes", "generators", "division", "absolute_import", "with_statement",
    "print_function", "unicode_literals", "barry_as_FLUFL", "generator_stop", "annotations",
    "all_feature_names",
)  # fmt: skip

#: Globals that run nothing and read nothing, accepted in pickles that are *not* weights files
#: (a raw pickle, joblib, an object array; not a torch checkpoint, whose allowlist above stays
#: exactly as strict). Each builds or measures a plain value: container and number types
#: (their results may be filled like a literal's), `len`, and the `__future__` feature records
#: (`_Feature` is rebuilt as NEWOBJ(cls, ()) + BUILD of its three fields). Other projects'
#: benign samples name them; refusing them there was noise (issue 14, class 7).
HARMLESS_OUTSIDE_WEIGHTS: Mapping[tuple[str, str], AllowEntry] = {
    **_entries(
        "harmless-builtin",
        "builtins",
        ("len", "dict", "list", "tuple", "int", "float", "str", "bool"),
    ),
    **_entries("harmless-builtin", "collections", ("deque",)),
    **_entries("future-feature", "__future__", ("_Feature",), check=ArgCheck.NO_ARGUMENTS),
    **_entries("future-feature", "__future__", _FUTURE_FEATURES, Use.REFERENCE),
}

#: What torch 2.13.0's weights-only allowlist has that we do not, and why.
EXCLUDED_FROM_TORCH: Mapping[str, str] = {
    "torch._utils._rebuild_wrapper_subclass": (
        "instantiates an arbitrary class given as argument via _make_wrapper_subclass; only "
        "useful with a user-registered tensor subclass, which we never allow"
    ),
    "torch.{,cuda.}sparse.*Tensor": (
        "legacy sparse constructors build tensors from unchecked indices; torch validates them "
        "only in weights_only mode (CVE-2026-24747 class of memory corruption)"
    ),
    "torch.{,cuda.}*Tensor": (
        "legacy typed-tensor classes: called with sizes (allocation) or BUILD via set_(); no "
        "checkpoint since torch 0.4 needs them"
    ),
    "torch.cuda.Q*Storage": "not in torch 2.13.0 either for cuda; quantized storages are CPU",
    "torch.serialization.get_safe_globals()": (
        "user-registered globals (_rebuild_njt, NestedTensor, DeviceMesh layouts) are "
        "process-local configuration, not something a checkpoint may rely on"
    ),
}

# --- the dangerous table: labels only ------------------------------------------------------

#: Modules every attribute of which (and every submodule) is labelled dangerous.
DANGEROUS_MODULES: Mapping[str, str] = {
    # process and code execution
    "os": "process execution / file system",
    "posix": "process execution / file system",
    "nt": "process execution / file system",
    "subprocess": "process execution",
    "pty": "process execution",
    "popen2": "process execution",
    "commands": "process execution",
    "platform": "process execution",
    "multiprocessing": "process execution",
    "concurrent": "process execution",
    "asyncio": "process execution",
    "_posixsubprocess": "process execution",
    "runpy": "code execution",
    "code": "code execution",
    "codeop": "code execution",
    "timeit": "code execution",
    "cProfile": "code execution",
    "profile": "code execution",
    "trace": "code execution",
    "pdb": "code execution",
    "bdb": "code execution",
    "doctest": "code execution",
    "idlelib": "code execution",
    "pydoc": "code execution",
    "_pyrepl": "code execution",
    "_osx_support": "process execution",
    "_aix_support": "process execution",
    "distutils": "process execution",
    "setuptools": "process execution",
    "pip": "package installation (CVE-2025-1716)",
    "ensurepip": "package installation",
    "venv": "process execution",
    "compileall": "code compilation",
    "py_compile": "code compilation",
    "marshal": "code objects",
    "types": "code objects / function construction",
    "ctypes": "native code",
    "_ctypes": "native code",
    "cffi": "native code",
    # imports and interpreter state
    "importlib": "arbitrary import",
    "imp": "arbitrary import",
    "pkgutil": "arbitrary import",
    "zipimport": "arbitrary import",
    "sys": "interpreter state (sys.modules tricks)",
    "site": "interpreter state",
    "gc": "interpreter state",
    "inspect": "interpreter introspection",
    "atexit": "deferred execution",
    "signal": "deferred execution",
    "threading": "deferred execution",
    "_thread": "deferred execution",
    "sched": "deferred execution",
    # nested deserializers
    "pickle": "deserializer",
    "_pickle": "deserializer",
    "pickletools": "deserializer",
    "copyreg": "object construction by name",
    "shelve": "deserializer",
    "dill": "deserializer",
    "cloudpickle": "deserializer",
    "joblib": "deserializer",
    "jsonpickle": "deserializer",
    "yaml": "deserializer",
    "pandas": "deserializer / file access",
    # files, network, browsers
    "shutil": "file system",
    "tempfile": "file system",
    "io": "file access",
    "_io": "file access",
    "pathlib": "file system",
    "glob": "file system",
    "fileinput": "file access",
    "linecache": "file access",
    "logging": "file access (FileHandler)",
    "socket": "network",
    "_socket": "network",
    "ssl": "network (DNS exfiltration)",
    "http": "network",
    "urllib": "network",
    "urllib2": "network",
    "requests": "network",
    "httpx": "network",
    "ftplib": "network",
    "smtplib": "network",
    "imaplib": "network / process execution",
    "poplib": "network",
    "telnetlib": "network",
    "xmlrpc": "network",
    "webbrowser": "browser / process execution",
    "uuid": "process execution (uuid._get_command_stdout)",
    "tkinter": "GUI / code execution",
    "jinja2": "template execution",
    # framework gadgets
    "torch.hub": "code download and execution",
    "torch.jit": "TorchScript loading",
    "torch.package": "package loading (code)",
    "torch.utils.collect_env": "process execution",
    "torch.utils.bottleneck": "code execution (run_autograd_prof / run_cprofile exec their input)",
    "torch.utils.cpp_extension": "native code build and load",
    "torch.utils._config_module": "deserializer",
    "torch._inductor": "code compilation and execution",
    "torch._dynamo": "code execution",
    "torch.distributed": "network / remote procedure calls",
    "torch.ops": "arbitrary operators (file I/O)",
    "torch._ops": "arbitrary operators",
    "torch._C": "native internals",
    "torch.library": "operator registration",
    "torch.classes": "native classes",
    "numpy.testing": "code execution (runstring)",
    "numpy.f2py": "native code build",
    "numpy.distutils": "process execution",
    "numpy.ctypeslib": "native code",
    "numpy.lib.npyio": "deserializer / file access",
    "numpy.lib.format": "deserializer / file access",
    "keras": "model loading (code)",
    "tensorflow": "file access / code execution",
}

#: Individual callables labelled dangerous; `name` is the first segment of the qualified name.
DANGEROUS_NAMES: Mapping[tuple[str, str], str] = {
    **{
        ("builtins", n): "code execution / attribute access"
        for n in (
            "eval",
            "exec",
            "compile",
            "execfile",
            "__import__",
            "getattr",
            "setattr",
            "delattr",
            "globals",
            "locals",
            "vars",
            "breakpoint",
            "input",
            "help",
            "open",
            "file",
            "reload",
            "apply",
            "exit",
            "quit",
            "type",
            "super",
            "object",
            "classmethod",
            "staticmethod",
            "property",
        )
    },
    ("operator", "attrgetter"): "attribute access",
    ("operator", "methodcaller"): "method call",
    ("operator", "itemgetter"): "item access",
    ("operator", "getitem"): "item access",
    ("operator", "setitem"): "item assignment",
    ("operator", "delitem"): "item deletion",
    ("_operator", "attrgetter"): "attribute access",
    ("_operator", "methodcaller"): "method call",
    ("_operator", "getitem"): "item access",
    ("functools", "partial"): "deferred call of another callable",
    ("functools", "reduce"): "call of another callable",
    ("_functools", "partial"): "deferred call of another callable",
    ("_functools", "reduce"): "call of another callable",
    ("collections", "defaultdict"): "calls its default factory",
    ("codecs", "open"): "file access",
    ("_codecs", "open"): "file access",
    ("torch", "load"): "deserializer",
    ("torch", "save"): "file write",
    ("torch", "from_file"): "file access",
    ("torch.serialization", "load"): "deserializer",
    ("torch.serialization", "_load"): "deserializer",
    ("torch.serialization", "_legacy_load"): "deserializer",
    ("torch.serialization", "save"): "file write",
    ("numpy", "load"): "deserializer",
    ("numpy", "loads"): "deserializer",
    ("numpy", "loadtxt"): "file access",
    ("numpy", "genfromtxt"): "file access",
    ("numpy", "fromfile"): "file access",
    ("numpy", "memmap"): "file access",
    ("numpy", "save"): "file write",
    ("numpy", "savez"): "file write",
    ("numpy", "frompyfunc"): "call of another callable",
    ("numpy", "vectorize"): "call of another callable",
}

#: Callables that deserialize bytes: their bytes arguments are scanned as nested pickles.
LOADERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pickle", "loads"),
        ("pickle", "load"),
        ("pickle", "Unpickler"),
        ("pickle", "_loads"),
        ("pickle", "_load"),
        ("pickle", "_Unpickler"),
        ("_pickle", "loads"),
        ("_pickle", "load"),
        ("_pickle", "Unpickler"),
        ("dill", "loads"),
        ("dill", "load"),
        ("cloudpickle", "loads"),
        ("cloudpickle", "load"),
        ("joblib", "load"),
        ("joblib.numpy_pickle", "load"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch.serialization", "_load"),
        ("torch.serialization", "_legacy_load"),
        ("torch.utils._config_module", "load_config"),
        ("numpy", "load"),
        ("numpy", "loads"),
        ("pandas", "read_pickle"),
        ("multiprocessing.reduction", "ForkingPickler"),
        ("multiprocessing.reduction", "ForkingPickler.loads"),
    }
)


def normalize(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 renames `pickle.Unpickler.find_class` applies with fix_imports."""
    if (module, name) in NAME_MAPPING:
        return NAME_MAPPING[(module, name)]
    return IMPORT_MAPPING.get(module, module), name


def _module_prefixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _dangerous_label(module: str, name: str) -> str | None:
    segments = name.split(".")
    head = segments[0]
    for prefix in _module_prefixes(module):
        label = DANGEROUS_NAMES.get((prefix, head)) or DANGEROUS_MODULES.get(prefix)
        if label is not None:
            return label
    # Protocol 4 walks dotted attributes, so a module can be reached as an attribute:
    # GLOBAL "torch" "hub.load" is torch.hub.load.
    for i in range(1, len(segments)):
        dotted = f"{module}.{'.'.join(segments[:i])}"
        label = DANGEROUS_MODULES.get(dotted) or DANGEROUS_NAMES.get((dotted, segments[i]))
        if label is not None:
            return label
    if any(s.startswith("__") for s in segments):
        return "dunder attribute walk (reaches function globals, builtins or subclasses)"
    return None


def _is_loader(module: str, name: str) -> bool:
    return (module, name) in LOADERS or (module, name.split(".", maxsplit=1)[0]) in LOADERS


def classify_global(module: str, name: str, *, weights: bool = True) -> GlobalDecision:
    """Decide one global as a pickle's GLOBAL / STACK_GLOBAL / INST names it.

    `module` and `name` are the raw operands; the Python 2 renames are applied first.
    Returns an allowed decision (verdict CLEAN) only for exact allowlist entries, and, when
    the pickle is not a weights file (`weights=False`), for `HARMLESS_OUTSIDE_WEIGHTS`.
    """
    module, name = normalize(module, name)
    entry = ALLOWED.get((module, name))
    if entry is not None:
        return GlobalDecision(
            Verdict.CLEAN,
            Severity.INFO,
            RULE_ALLOWED,
            entry.group,
            use=entry.use,
            check=entry.check,
        )
    harmless = None if weights else HARMLESS_OUTSIDE_WEIGHTS.get((module, name))
    if harmless is not None:
        return GlobalDecision(
            Verdict.CLEAN,
            Severity.INFO,
            RULE_HARMLESS,
            f"{harmless.group}, harmless outside a weights file",
            use=harmless.use,
            check=harmless.check,
        )
    loader = _is_loader(module, name)
    label = _dangerous_label(module, name)
    if label is not None or loader:
        return GlobalDecision(
            Verdict.MALICIOUS,
            Severity.CRITICAL,
            RULE_DANGEROUS,
            label or "deserializer",
            loader=loader,
        )
    return GlobalDecision(
        Verdict.SUSPICIOUS, Severity.HIGH, RULE_NOT_ALLOWED, "not in the checkpoint allowlist"
    )


#: The decision for a STACK_GLOBAL whose operands are computed at load time (P8).
COMPUTED_GLOBAL = GlobalDecision(
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "pickle.global.computed",
    "global name computed at load time (cannot be resolved statically)",
)
