"""Option values coerced without pydantic where the type is plain (str, int, Path, lists of them).

Typer 0.29 coerces every parameter through a pydantic `TypeAdapter`, built the first time the
parameter is processed: importing pydantic (and the plugin loader's `importlib.metadata`) costs
~70 ms, a third of a small `modelctl scan FILE`. Our commands take strings, integers, paths and
flags, which need no schema machinery.

So each Typer parameter gets a `PlainRuntimeParam` before parsing. It handles the unambiguous
values itself: a `bool` for a flag, a `str` for `str`, a `str`/`Path` for `Path`, an `int` or a
decimal string for `int`, a list or tuple of those for `list[...]`. Anything else (`" 7"`,
`"1_000"`, `"abc"`, a float, an enum, a ranged int, a custom parser) goes to Typer's own pydantic
coercion, built on first use, so every odd value gets exactly the value or the error message it
always got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _click
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param

#: What `int("...")` and pydantic's lax int parsing agree on without any doubt.
_DECIMAL = re.compile(r"-?[0-9]{1,18}\Z")


class _NotPlain(Exception):
    """The value is not one this module handles: Typer's pydantic coercion decides."""


def _leaf(annotation: Any, value: Any) -> Any:
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is str and isinstance(value, str):
        return value
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is int and isinstance(value, str) and _DECIMAL.match(value):
        return int(value)
    if annotation is Path and isinstance(value, Path):
        return value
    if annotation is Path and isinstance(value, str) and value:
        return Path(value)
    raise _NotPlain


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Coerces plain values itself; delegates the rest to Typer's own runtime parameter."""

    descriptor: TypeDescriptor | None = None
    _fallback: list[RuntimeParam] = field(default_factory=list, compare=False, repr=False)

    def _coerce_value(self, value: Any, param: Any, ctx: _click.Context) -> Any:
        annotation: Any = self.annotation
        try:
            if get_origin(annotation) is list:
                (item,) = get_args(annotation)
                items = value if isinstance(value, (list, tuple)) else [value]
                return [_leaf(item, v) for v in items]
            return _leaf(annotation, value)
        except _NotPlain:
            return self._typer_coercion()._coerce_value(value, param=param, ctx=ctx)

    def _typer_coercion(self) -> RuntimeParam:
        if not self._fallback:
            assert self.descriptor is not None
            self._fallback.append(build_runtime_param(self.descriptor))
        return self._fallback[0]


def _is_plain(descriptor: TypeDescriptor) -> bool:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or descriptor.is_choice:
        return False
    if info.min is not None or info.max is not None or info.parser is not None:
        return False
    if getattr(info, "click_type", None) is not None:
        return False
    annotation: Any = descriptor.annotation
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and args[0] in (str, int, Path)
    return annotation in (str, int, Path, bool)


def install(command: _click.Command, ctx: _click.Context) -> None:
    """Give `command`'s plain Typer parameters (and its subcommands', for a group) plain coercion.

    `ctx` names the help option, which Click adds to the parameters when first asked (the
    command's own context inherits the names). Parameters whose coercion is already built, or
    that are not Typer's, are left alone."""
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if not isinstance(descriptor, TypeDescriptor) or not _is_plain(descriptor):
            continue
        if getattr(param, "_runtime_param", "absent") is not None:
            continue
        param._runtime_param = PlainRuntimeParam(  # type: ignore[attr-defined]
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
        )
    for sub in getattr(command, "commands", {}).values():
        install(sub, ctx)
