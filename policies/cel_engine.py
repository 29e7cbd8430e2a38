"""CEL behind a small interface (ADR 0003): compile + type-check at load, evaluate fail-closed.

The facts' variables are fixed and documented in policies/README.md:
`checkpoint` map(string, dyn), `attestations` and `scans` list(map(string, dyn)),
`license` string, `now` timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]


class CelCompileError(Exception):
    """A rule that does not parse, does not type-check, or does not return a bool."""


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    ok: bool
    error: str | None


def _new_env(*, selector: bool = False) -> Any:
    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    variables = {
        "checkpoint": dyn_map,
        "attestations": cel.Type.List(dyn_map),
        "scans": cel.Type.List(dyn_map),
        "license": cel.Type.STRING,
        "now": cel.Type.TIMESTAMP,
    }
    if selector:  # containment selectors run after the checks: they also see what was waived
        variables["waived"] = cel.Type.List(cel.Type.STRING)
        variables["triaged"] = cel.Type.List(cel.Type.STRING)
    return cel.NewEnv(variables=variables)


_ENV = _new_env()
#: `spec.containment.select[].when`: the rules' variables plus `waived` (check ids waived in
#: this decision) and `triaged` (finding ids cleared as false positives).
_SELECTOR_ENV = _new_env(selector=True)


def compile_rule(expression: str, *, selector: bool = False) -> Any:
    """Compile and type-check; raises CelCompileError with cel-cpp's positioned message."""
    env = _SELECTOR_ENV if selector else _ENV
    try:
        compiled = env.compile(expression)
    except Exception as exc:
        raise CelCompileError(str(exc).strip()) from exc
    returned = compiled.return_type()
    if not returned == cel.Type.BOOL:
        raise CelCompileError(f"the expression returns {returned.name()}, not bool")
    return compiled


def activation(variables: Mapping[str, Any], *, selector: bool = False) -> Any:
    """One activation per decision, shared by every rule (or every selector)."""
    return (_SELECTOR_ENV if selector else _ENV).Activation(dict(variables))


def run_rule(compiled: Any, act: Any) -> RuleOutcome:
    """True only for a BOOL true; an ERROR value, another type or an exception is an error."""
    try:
        value = compiled.eval(act)
        kind = value.type()
        if kind == cel.Type.BOOL:
            return RuleOutcome(ok=value.value() is True, error=None)
        if kind == cel.Type.ERROR:
            return RuleOutcome(ok=False, error=str(value.value()))
        return RuleOutcome(ok=False, error=f"the rule returned {kind.name()}, not bool")
    except Exception as exc:  # noqa: BLE001  fail closed on anything the engine raises
        return RuleOutcome(ok=False, error=f"{type(exc).__name__}: {exc}")


def constant_value(compiled: Any, *, selector: bool = False) -> bool | None:
    """The rule's value when it uses no variable (for lint), else None."""
    outcome = run_rule(compiled, (_SELECTOR_ENV if selector else _ENV).Activation({}))
    return None if outcome.error is not None else outcome.ok
