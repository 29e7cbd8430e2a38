"""Which names in a Keras config Keras resolves, and the dangerous names it would not.

Keras imports and instantiates a name only where its deserializer looks one up: the
``class_name`` / ``module`` / ``registered_name`` (and a function's ``config``) of an object
that has both ``class_name`` and ``config`` (a dict without ``config`` is plain data to Keras 3
and an error to Keras 2), a ``__typespec__``'s ``spec_name``, and string activations. The
`keras` scanner judges those positions as code. Everywhere else (a layer's other settings,
metadata, dicts that are not objects, keys) a gadget or module name is inert *to Keras*, but a
custom ``from_config``, a second loader or a later Keras may read it: `inert_references` finds
those, so they are reported at a severity that says they are not resolved there.

``tensorflow.keras.*`` (and ``tensorflow.python.keras.*``) is the Keras that TensorFlow
re-exports: `keras_module` maps it onto ``keras.*`` so its classes are judged against the same
allowlist instead of as an import of ``tensorflow`` (a false ``malicious``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

#: Top-level packages that are Keras itself (Keras 3, and the Keras 2 standalone package).
KERAS_MODULE_ROOTS = frozenset({"keras", "tf_keras"})
#: TensorFlow's re-exports of Keras: `tensorflow.keras.layers` is `keras.layers`.
TF_KERAS_PREFIXES = ("tensorflow.keras", "tensorflow.python.keras")
#: Bare words that name a module whose import runs commands or code. A bare `numpy` or
#: `signal` is too common in ordinary configs to mean anything; dotted references are checked
#: against the scanner's full list of dangerous roots.
BARE_DANGEROUS_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "runpy", "pty",
        "importlib", "marshal", "pickle", "_pickle", "ctypes", "socket", "shutil", "sys",
    }
)  # fmt: skip

_DOTTED = re.compile(r"\s*([A-Za-z_]\w*)(?:\s*[.:>]\s*[A-Za-z_]\w*)+\s*")
_WORD = re.compile(r"\w+")
_CODE = re.compile(r"__import__|\b(?:eval|exec|compile|getattr|system|popen)\s*\(")


def module_root(module: str) -> str:
    return module.split(".", 1)[0]


def keras_module(module: str) -> str | None:
    """`module` as the Keras module it resolves to, or None when it is not Keras."""
    if module_root(module) in KERAS_MODULE_ROOTS:
        return module
    for prefix in TF_KERAS_PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return "keras" + module[len(prefix) :]
    return None


@dataclass(frozen=True, slots=True)
class InertReference:
    """A dangerous name where Keras does not resolve names."""

    kind: str  # "gadget" or "module"
    name: str


def inert_references(
    text: str,
    *,
    gadgets: Collection[str],
    dangerous_roots: Collection[str],
    bare_words: bool = True,
) -> list[InertReference]:
    """The gadget names, dangerous module references and code fragments in one string.

    `bare_words=False` skips single-word module names (a vocabulary holds words such as `os`).
    """
    found: list[InertReference] = []
    words = _WORD.findall(text)
    for word in dict.fromkeys(words):
        if word in gadgets:
            found.append(InertReference("gadget", word))
    dotted = _DOTTED.fullmatch(text)
    if dotted is not None:
        root = dotted.group(1)
        if root in dangerous_roots and keras_module(re.sub(r"\s", "", text)) is None:
            found.append(InertReference("module", text.strip()[:200]))
    elif bare_words and text.strip() in BARE_DANGEROUS_MODULES:
        found.append(InertReference("module", text.strip()))
    elif _CODE.search(text):
        found.append(InertReference("module", text.strip()[:200]))
    return found
