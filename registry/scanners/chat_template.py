"""Static analysis of Jinja2 chat templates (CVE-2024-34359), for any scanner that finds one.

Runtimes render chat templates: GGUF's ``tokenizer.chat_template`` (the `gguf` scanner) and the
Hugging Face files (``tokenizer_config.json``, ``chat_template.json``, ``*.jinja``: the
`chat-template` scanner, `chat_template_files`). A template is parsed with Jinja2's sandboxed
environment into an AST, never compiled to Python or rendered, and the AST is checked for
sandbox-escape gadgets.
`analyze_chat_template` takes the template text and returns ``(verdict, finding)`` pairs; the
caller decides how they count toward its file verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from registry.scanners.base import Finding, JSONValue, Severity, Verdict

#: Findings name the GGUF scanner and its rule ids, as they did before this module was split
#: out of it; a scanner reusing the analysis passes its own id as ``scanner`` and its own rule
#: prefix as ``rule_prefix`` (the rules are ``<prefix>.escape`` / ``.suspicious`` / ``.syntax``).
DEFAULT_SCANNER_ID = "gguf"
DEFAULT_RULE_PREFIX = "gguf.chat-template"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
ESCAPE_RULE = f"{DEFAULT_RULE_PREFIX}.escape"
SUSPICIOUS_RULE = f"{DEFAULT_RULE_PREFIX}.suspicious"
SYNTAX_RULE = f"{DEFAULT_RULE_PREFIX}.syntax"
SSTI_REFERENCE = "CVE-2024-34359"

_SEVERITY = {
    Verdict.MALICIOUS: Severity.CRITICAL,
    Verdict.MALFORMED: Severity.HIGH,
    Verdict.SUSPICIOUS: Severity.MEDIUM,
}


def _finding(
    scanner: str,
    verdict: Verdict,
    rule: str,
    message: str,
    *,
    reference: str | None = None,
    **evidence: JSONValue,
) -> tuple[Verdict, Finding]:
    return verdict, Finding(
        scanner=scanner,
        rule=rule,
        severity=_SEVERITY[verdict],
        message=message,
        evidence=evidence,
        reference=reference,
    )


class _GenerationTag(Extension):
    """Parses transformers' ``{% generation %}...{% endgeneration %}`` block (assistant mask)."""

    tags = {"generation"}  # noqa: RUF012 - Extension API declares a plain set

    def parse(self, parser: Parser) -> nodes.Node | list[nodes.Node]:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _template_env() -> ImmutableSandboxedEnvironment:
    # The same parser transformers uses for chat templates (sandboxed, loopcontrols), plus
    # `do` so that templates written for other runtimes still parse. Used for `parse` only.
    return ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag],
    )


#: Dunder names whose appearance anywhere in template code is a known escape primitive.
ESCAPE_DUNDERS = frozenset(
    {
        "__class__", "__mro__", "__base__", "__bases__", "__subclasses__", "__globals__",
        "__builtins__", "__import__", "__init__", "__dict__", "__code__", "__func__",
        "__self__", "__closure__", "__getattribute__", "__getattr__", "__reduce__",
        "__reduce_ex__", "__loader__", "__spec__", "__call__", "__module__", "__new__",
        "__setattr__", "__delattr__", "__traceback__", "__wrapped__",
    }
)  # fmt: skip
#: Non-underscore attributes that reach frames, code, modules or process execution.
ESCAPE_ATTRIBUTES = frozenset(
    {
        "mro", "func_globals", "func_code", "im_func", "im_self", "gi_frame", "gi_code",
        "cr_frame", "cr_code", "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins",
        "f_back", "f_code", "tb_frame", "tb_next", "co_code", "os", "sys", "subprocess",
        "builtins", "importlib", "popen", "import_module", "check_output", "getoutput",
        "getstatusoutput", "spawnv", "spawnl", "execv", "execl", "execve", "load_module",
        "exec_module",
    }
)  # fmt: skip
#: Methods that run commands or code when called.
ESCAPE_CALLS = frozenset({"system", "popen", "eval", "exec", "run", "call", "check_call"})
#: Globals that exist only to be abused in a chat template (Jinja gadget objects, Flask
#: objects copied from SSTI payloads, Python builtins that Jinja does not even provide).
SUSPICIOUS_GLOBALS = frozenset(
    {
        "lipsum", "cycler", "joiner", "self", "config", "request", "session", "g", "url_for",
        "get_flashed_messages", "os", "sys", "subprocess", "builtins", "importlib", "eval",
        "exec", "getattr", "setattr", "open", "globals", "locals", "vars", "compile",
    }
)  # fmt: skip
_GADGET_GLOBALS = frozenset({"lipsum", "cycler", "joiner", "namespace", "self", "range", "dict"})
_MODULE_STRINGS = frozenset(
    {"os", "sys", "subprocess", "builtins", "posix", "nt", "importlib", "pty", "socket"}
)
_SHELL_MARKERS = ("subprocess", "popen", "os.system", "import os", "__import__", "/bin/sh")
_ATTR_TAKING_FILTERS = frozenset(
    {"map", "select", "reject", "selectattr", "rejectattr", "sort", "groupby", "sum",
     "unique", "min", "max", "dictsort"}
)  # fmt: skip
_DUNDER_NAME = re.compile(r"__\w+__")
_WORD = re.compile(r"\w+")
_FOLD_MAX = 4096
_SAFE_PERCENT = re.compile(r"%[^%csdirxX]")
_MAX_RANGE = 100_000


def _fold(node: nodes.Node, depth: int = 0) -> str | int | None:
    """Constant-fold string-building expressions, bounded; None when not a constant."""
    if depth > 64:
        return None
    result: object = None
    if isinstance(node, nodes.Const):
        result = node.value
    elif isinstance(node, nodes.Concat):
        parts = [_fold(n, depth + 1) for n in node.nodes]
        if all(p is not None for p in parts):
            result = "".join(str(p) for p in parts)
    elif isinstance(node, nodes.Add | nodes.Mul | nodes.Mod):
        left, right = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        result = _fold_binary(node, left, right)
    elif isinstance(node, nodes.Filter) and node.node is not None:
        result = _fold_filter(node, depth)
    elif isinstance(node, nodes.Getitem):
        result = _fold_getitem(node, depth)
    if isinstance(result, bool):
        return None
    if isinstance(result, str) and len(result) <= _FOLD_MAX:
        return result
    if isinstance(result, int) and abs(result) <= 10**9:
        return result
    return None


def _fold_getitem(node: nodes.Getitem, depth: int) -> str | None:
    base = _fold(node.node, depth + 1)
    if not isinstance(base, str):
        return None
    if isinstance(node.arg, nodes.Slice):
        bounds = [
            None if n is None else _fold(n, depth + 1)
            for n in (node.arg.start, node.arg.stop, node.arg.step)
        ]
        ints = [b for b in bounds if isinstance(b, int) or b is None]
        if len(ints) == 3 and ints[2] != 0:
            start, stop, step = (b if isinstance(b, int) else None for b in ints)
            return base[start:stop:step]
        return None
    index = _fold(node.arg, depth + 1)
    if isinstance(index, int) and -len(base) <= index < len(base):
        return base[index]
    return None


def _fold_binary(node: nodes.Node, left: object, right: object) -> str | int | None:
    if isinstance(node, nodes.Add):
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left + right
    elif isinstance(node, nodes.Mul):
        if isinstance(left, int) and isinstance(right, str):
            left, right = right, left
        if isinstance(left, str) and isinstance(right, int) and len(left) * right <= _FOLD_MAX:
            return left * right
        if isinstance(left, int) and isinstance(right, int):
            return left * right
    elif isinstance(node, nodes.Mod) and isinstance(left, str):
        return _percent(left, right)
    return None


def _percent(fmt: str, args: object) -> str | None:
    if _SAFE_PERCENT.search(fmt.replace("%%", "")):
        return None  # width/precision or exotic conversions: do not evaluate
    if not isinstance(args, tuple):
        args = (args,)
    if not all(isinstance(a, str | int) and not isinstance(a, bool) for a in args):
        return None
    try:
        return fmt % args
    except (TypeError, ValueError, OverflowError):
        return None


def _fold_filter(node: nodes.Filter, depth: int) -> str | None:
    assert node.node is not None
    if node.name == "join" and isinstance(node.node, nodes.List | nodes.Tuple):
        items = [_fold(n, depth + 1) for n in node.node.items]
        sep = _fold(node.args[0], depth + 1) if node.args else ""
        if all(i is not None for i in items) and isinstance(sep, str):
            return sep.join(str(i) for i in items)
        return None
    base = _fold(node.node, depth + 1)
    args = [_fold(a, depth + 1) for a in node.args]
    if not isinstance(base, str) or any(a is None for a in args) or node.kwargs:
        return None
    result: str | None = None
    if not args:
        unary = {
            "lower": base.lower(),
            "upper": base.upper(),
            "string": base,
            "trim": base.strip(),
            "reverse": base[::-1],
            "first": base[:1],
            "last": base[-1:],
        }
        result = unary.get(node.name)
    elif node.name == "replace" and len(args) == 2:
        old, new = str(args[0]), str(args[1])
        if len(base) + base.count(old) * len(new) <= _FOLD_MAX:
            result = base.replace(old, new)
    elif node.name == "format":
        result = _percent(base, tuple(args))
    return result


@dataclass(slots=True)
class _TemplateCheck:
    scanner: str
    rule_prefix: str
    key: str
    lines: list[str]
    results: list[tuple[Verdict, Finding]] = field(default_factory=list)
    _seen: set[tuple[str, str, int]] = field(default_factory=set)

    def flag(self, verdict: Verdict, node: nodes.Node, detail: str, needle: str) -> None:
        lineno = getattr(node, "lineno", 1) or 1
        marker = (verdict.value, detail, lineno)
        if marker in self._seen:
            return
        self._seen.add(marker)
        kind = "escape" if verdict is Verdict.MALICIOUS else "suspicious"
        rule = f"{self.rule_prefix}.{kind}"
        what = "sandbox escape" if verdict is Verdict.MALICIOUS else "unusual construct"
        self.results.append(
            _finding(
                self.scanner,
                verdict,
                rule,
                f"chat template {self.key!r}: {what}: {detail}",
                reference=SSTI_REFERENCE if verdict is Verdict.MALICIOUS else None,
                key=self.key,
                line=lineno,
                snippet=self._snippet(lineno, needle),
                detail=detail,
            )
        )

    def _snippet(self, lineno: int, needle: str) -> str:
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        at = line.find(needle) if needle else -1
        start = max(0, (at if at >= 0 else 0) - 60)
        return line[start : start + 160]

    def attribute(self, node: nodes.Node, name: str, how: str) -> None:
        if name.startswith("__"):
            self.flag(Verdict.MALICIOUS, node, f"{how} of dunder {name!r}", name)
        elif name in ESCAPE_ATTRIBUTES:
            self.flag(Verdict.MALICIOUS, node, f"{how} of {name!r}", name)
        elif name.startswith("_"):
            self.flag(Verdict.SUSPICIOUS, node, f"{how} of private {name!r}", name)

    def string(self, node: nodes.Node, text: str) -> None:
        stripped = text.strip()
        if _DUNDER_NAME.fullmatch(stripped) or any(d in text for d in ESCAPE_DUNDERS):
            self.flag(Verdict.MALICIOUS, node, f"string names a dunder: {text[:60]!r}", text)
        elif _WORD.fullmatch(stripped) and (stripped.startswith("__") or stripped.endswith("__")):
            self.flag(Verdict.SUSPICIOUS, node, f"partial dunder string {text[:60]!r}", text)
        elif stripped in _MODULE_STRINGS or any(m in text for m in _SHELL_MARKERS):
            self.flag(Verdict.SUSPICIOUS, node, f"module or shell string {text[:60]!r}", text)


def analyze_chat_template(
    source: str,
    *,
    key: str = CHAT_TEMPLATE_KEY,
    scanner: str = DEFAULT_SCANNER_ID,
    rule_prefix: str = DEFAULT_RULE_PREFIX,
) -> list[tuple[Verdict, Finding]]:
    """Parse a chat template (never render or compile it) and judge its AST.

    Returns ``(verdict, finding)`` pairs: ``malicious`` for escape primitives, ``suspicious``
    for constructs no ordinary chat template needs, ``malformed`` when Jinja2 cannot parse it.
    """
    check = _TemplateCheck(scanner, rule_prefix, key, source.splitlines())
    syntax_rule = f"{rule_prefix}.syntax"
    try:
        tree = _template_env().parse(source)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        return [
            _finding(
                scanner,
                Verdict.MALFORMED,
                syntax_rule,
                f"chat template {key!r} does not parse: {exc}",
                key=key,
                line=lineno,
            )
        ]
    except RecursionError:
        return [
            _finding(
                scanner,
                Verdict.MALFORMED,
                syntax_rule,
                f"chat template {key!r} nests too deeply",
                key=key,
            )
        ]
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")} | {
        m.name for m in tree.find_all(nodes.Macro)
    }
    for node in tree.find_all(nodes.Node):
        _check_node(check, node, bound)
    return check.results


def _check_node(check: _TemplateCheck, node: nodes.Node, bound: set[str]) -> None:  # noqa: PLR0912
    if isinstance(node, nodes.Getattr):
        check.attribute(node, node.attr, "attribute access")
    elif isinstance(node, nodes.NSRef):
        check.attribute(node, node.attr, "namespace assignment")
    elif isinstance(node, nodes.Getitem):
        key = _fold(node.arg)
        if isinstance(key, str):
            check.attribute(node, key, "item access")
    elif isinstance(node, nodes.Keyword):
        check.attribute(node, node.key, "keyword argument")
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        check.string(node, node.value)
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        if node.name.startswith("__"):
            check.flag(Verdict.MALICIOUS, node, f"dunder global {node.name!r}", node.name)
        elif node.name in SUSPICIOUS_GLOBALS and node.name not in bound:
            check.flag(Verdict.SUSPICIOUS, node, f"gadget global {node.name!r}", node.name)
    elif isinstance(node, nodes.Filter):
        _check_filter(check, node)
    elif isinstance(node, nodes.Call):
        _check_call(check, node, bound)
    elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
        check.flag(Verdict.SUSPICIOUS, node, f"loads another template ({type(node).__name__})", "")
    elif isinstance(node, nodes.Pow):
        check.flag(Verdict.SUSPICIOUS, node, "exponentiation (resource exhaustion)", "**")
    if isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Mod | nodes.Filter):
        built = _fold(node)
        if isinstance(built, str) and "__" in built:
            check.flag(Verdict.MALICIOUS, node, f"dunder built at render time: {built[:60]!r}", "")
        elif isinstance(node, nodes.Mul) and built is None:
            sizes = [_fold(node.left), _fold(node.right)]
            if any(isinstance(s, int) and s > _MAX_RANGE for s in sizes):
                check.flag(Verdict.SUSPICIOUS, node, "huge repetition", "*")


def _check_filter(check: _TemplateCheck, node: nodes.Filter) -> None:
    args = list(node.args)
    if node.name == "map" and args and _fold(args[0]) == "attr":
        args = args[1:]
    elif node.name != "attr":
        if node.name in _ATTR_TAKING_FILTERS:
            for arg in [*args, *(kw.value for kw in node.kwargs)]:
                name = _fold(arg)
                if isinstance(name, str):
                    check.attribute(node, name, f"|{node.name} attribute")
        if node.name == "format" and node.node is not None:
            fmt = _fold(node.node)
            if isinstance(fmt, str) and "%c" in fmt:
                check.flag(Verdict.SUSPICIOUS, node, "builds characters with %c", "%c")
        return
    if not args:
        return
    name = _fold(args[0])
    if isinstance(name, str):
        check.attribute(node, name, "|attr")
        if not (name.startswith("_") or name in ESCAPE_ATTRIBUTES):
            check.flag(Verdict.SUSPICIOUS, node, f"|attr({name!r}) instead of plain access", "attr")
    else:
        check.flag(Verdict.SUSPICIOUS, node, "|attr with a computed attribute name", "attr")


def _check_call(check: _TemplateCheck, node: nodes.Call, bound: set[str]) -> None:
    callee = node.node
    if isinstance(callee, nodes.Getattr) and callee.attr in ESCAPE_CALLS:
        receiver = callee.node
        # `.run`, `.call` are only dangerous on gadget chains; `.system`/`.popen`/`eval` always.
        always = callee.attr in ("system", "popen", "eval", "exec")
        chained = isinstance(receiver, nodes.Getattr | nodes.Getitem) and _reaches_gadget(receiver)
        if always or chained:
            check.flag(Verdict.MALICIOUS, node, f"calls .{callee.attr}()", callee.attr)
    elif isinstance(callee, nodes.Name) and callee.name == "range" and "range" not in bound:
        for arg in node.args:
            value = _fold(arg)
            if isinstance(value, int) and value > _MAX_RANGE:
                check.flag(Verdict.SUSPICIOUS, node, f"range({value})", "range")


def _reaches_gadget(node: nodes.Node) -> bool:
    for n in [node, *node.find_all(nodes.Node)]:
        if isinstance(n, nodes.Getattr) and (n.attr.startswith("_") or n.attr in ESCAPE_ATTRIBUTES):
            return True
        if isinstance(n, nodes.Name) and n.name in _GADGET_GLOBALS:
            return True
    return False
