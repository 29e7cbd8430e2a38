"""Dotted Python names that configs and serialized objects ask a loader to import, judged.

NeMo's Hydra `_target_`, skops' `__module__` / function nodes and TorchScript code all name
Python objects that the loader imports (and usually calls). `dangerous_root` says whether a
name's top-level module executes code, spawns processes, loads other serialized objects or
reaches files or the network: naming one is an attack, whatever the allowlist of the format.
"""

from __future__ import annotations

#: Top-level modules whose import or call is code execution, file, process or network access
#: (or a nested deserializer). Shared by the NeMo, skops and TorchScript scanners.
DANGEROUS_ROOTS = frozenset(
    {
        "builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "importlib",
        "runpy", "code", "codeop", "pickle", "_pickle", "marshal", "shutil", "socket", "ctypes",
        "pty", "webbrowser", "types", "operator", "functools", "pathlib", "io", "_io",
        "tempfile", "urllib", "http", "ftplib", "smtplib", "requests", "multiprocessing",
        "threading", "asyncio", "pdb", "timeit", "pydoc", "platform", "signal", "pip",
        "setuptools", "distutils", "pkgutil", "zipimport", "inspect", "dill", "cloudpickle",
        "joblib", "shelve", "commands", "popen2", "cProfile", "profile", "trace", "uuid",
        "ensurepip", "venv", "idlelib", "lib2to3", "imaplib", "ssl", "_posixsubprocess",
    }
)  # fmt: skip

#: Names under otherwise-trusted roots that load files, download or deserialize.
DANGEROUS_NAMES = frozenset(
    {
        "torch.load", "torch.hub.load", "torch.hub.load_state_dict_from_url",
        "torch.hub.download_url_to_file", "torch.jit.load", "torch.package.PackageImporter",
        "torch.serialization.load", "torch.utils.cpp_extension.load",
        "torch.utils.cpp_extension.load_inline", "torch.ops.load_library",
        "torch.classes.load_library", "numpy.load", "numpy.loadtxt", "numpy.fromfile",
        "numpy.testing._private.utils.runstring", "scipy.io.loadmat",
        # checkpoint loaders and indirection under namespaces configs may otherwise name
        "pytorch_lightning.utilities.cloud_io", "lightning.pytorch.utilities.cloud_io",
        "lightning_fabric.utilities.cloud_io", "nemo.utils.model_utils.import_class_by_path",
        "hydra.utils.instantiate", "hydra.utils.call", "hydra.utils.get_method",
        "hydra.utils.get_class", "hydra._internal.utils._locate",
    }
)  # fmt: skip


def root(name: str) -> str:
    return name.split(".", 1)[0]


def is_dangerous(name: str) -> bool:
    """Whether importing / calling `name` (a dotted path) is code, process, file or network
    access."""
    if root(name) in DANGEROUS_ROOTS:
        return True
    return any(name == d or name.startswith(d + ".") for d in DANGEROUS_NAMES)


def under(name: str, prefixes: frozenset[str]) -> bool:
    """Whether `name` is one of `prefixes` or inside one (`nemo` covers `nemo.collections.x`)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)
