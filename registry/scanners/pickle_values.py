"""The symbolic values of the pickle machine (`pickle_vm`) and their bounded rendering.

What the machine pushes instead of real objects: globals as the policy decided them, the
results of calls it never makes, persistent ids, extension codes, out-of-band buffers, and
dicts and sets kept as pairs because their keys may be symbols. Shared by the dispatch loop in
`pickle_vm` and the numpy and joblib layout readers (`pickle_numpy`, `pickle_joblib`).
"""

from __future__ import annotations

from collections.abc import Sequence

from registry.scanners.pickle_policy import GlobalDecision

#: Argument reprs in evidence are cut to this many characters.
ARG_REPR_CHARS = 200


class GlobalRef:
    """A global named by GLOBAL / STACK_GLOBAL / INST, as the policy decided it."""

    __slots__ = ("decision", "offset", "qualname", "raw")

    def __init__(self, qualname: str, raw: str, decision: GlobalDecision, offset: int) -> None:
        self.qualname = qualname  # after the Python 2 renames
        self.raw = raw  # as written in the pickle
        self.decision = decision
        self.offset = offset


class CallResult:
    """What a call returns at load time; `items`/`state` record later APPEND/SETITEM/BUILD."""

    __slots__ = ("args", "func", "items", "kwargs", "offset", "state")

    def __init__(self, func: object, args: object, kwargs: object, offset: int) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.offset = offset
        self.items: list[object] | None = None
        self.state: object = None


class PersistentRef:
    """The consumer's `persistent_load(pid)` (torch storages)."""

    __slots__ = ("offset", "pid")

    def __init__(self, pid: object, offset: int) -> None:
        self.pid = pid
        self.offset = offset


class ExtRef:
    """An object from the copyreg extension registry (EXT1/EXT2/EXT4)."""

    __slots__ = ("code", "offset")

    def __init__(self, code: int, offset: int) -> None:
        self.code = code
        self.offset = offset


class BufferRef:
    """An out-of-band buffer (NEXT_BUFFER) the stream itself does not carry."""

    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset


class PDict:
    """A dict built by the pickle; pairs because keys may be unhashable symbols."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[object, object]] | None = None) -> None:
        self.items: list[tuple[object, object]] = items if items is not None else []


class PSet:
    __slots__ = ("frozen", "items")

    def __init__(self, items: list[object], frozen: bool) -> None:
        self.items = items
        self.frozen = frozen


class BigInt:
    """A LONG too large to be worth materialising."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


#: Values only known at load time: a layout that depends on one cannot be read off the stream.
COMPUTED = (CallResult, PersistentRef, ExtRef, BufferRef)


def render(value: object, limit: int = ARG_REPR_CHARS) -> str:
    """A bounded, cycle-safe repr of a symbolic value."""
    out: list[str] = []
    _render_into(value, out, [0], limit, 0)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render_into(value: object, out: list[str], used: list[int], limit: int, depth: int) -> None:
    if used[0] > limit:
        return
    if depth > 6:
        piece = "..."
    elif isinstance(value, GlobalRef):
        piece = f"<global {value.qualname}>"
    elif isinstance(value, CallResult):
        callee = value.func.qualname if isinstance(value.func, GlobalRef) else "<computed>"
        out.append(f"{callee}(")
        used[0] += len(callee) + 1
        _render_into(value.args, out, used, limit, depth + 1)
        piece = ")"
    elif isinstance(value, PersistentRef):
        out.append("<persistent ")
        used[0] += 12
        _render_into(value.pid, out, used, limit, depth + 1)
        piece = ">"
    elif isinstance(value, ExtRef):
        piece = f"<extension {value.code}>"
    elif isinstance(value, BufferRef):
        piece = "<out-of-band buffer>"
    elif isinstance(value, BigInt):
        piece = f"<int of {value.nbytes} bytes>"
    elif isinstance(value, list | tuple | PSet | PDict):
        _render_seq(value, out, used, limit, depth)
        return
    elif isinstance(value, bytes | bytearray | str):
        piece = repr(value[: limit + 1])
    else:
        piece = repr(value)
    out.append(piece)
    used[0] += len(piece)


def _render_seq(
    value: list[object] | tuple[object, ...] | PSet | PDict,
    out: list[str],
    used: list[int],
    limit: int,
    depth: int,
) -> None:
    if isinstance(value, PDict):
        opening, closing = "{", "}"
        seq: list[object] = []
        for k, v in value.items[:32]:
            seq.extend((k, v))
    elif isinstance(value, PSet):
        opening, closing = ("frozenset({", "})") if value.frozen else ("{", "}")
        seq = value.items[:32]
    else:
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        seq = list(value[:32])
    out.append(opening)
    used[0] += len(opening)
    for i, item in enumerate(seq):
        if used[0] > limit:
            break
        if i:
            sep = ": " if isinstance(value, PDict) and i % 2 else ", "
            out.append(sep)
            used[0] += 2
        _render_into(item, out, used, limit, depth + 1)
    out.append(closing)
    used[0] += len(closing)


def render_arg(value: object) -> str:
    if isinstance(value, str):
        return value[:ARG_REPR_CHARS]
    return render(value)


def qualname_of(value: object) -> str:
    return value.qualname if isinstance(value, GlobalRef) else "<computed>"


#: Values whose hash the loader computes without running anything, and that hold no others.
PLAIN_KEYS = frozenset({str, int, float, bytes, bool, type(None)})

#: How deep `unhashable` looks into tuples (CPython hashes them recursively).
_HASH_DEPTH = 64


def unhashable(value: object) -> bool:
    """Whether the loader's `hash(value)` raises TypeError: a list, dict, set, bytearray, or a
    tuple holding one. Symbols computed at load time are not known to be unhashable."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, list | PDict | bytearray) or (
            isinstance(item, PSet) and not item.frozen
        ):
            return True
        if isinstance(item, tuple) and depth < _HASH_DEPTH:
            pending.extend((x, depth + 1) for x in item)
    return False


def children(node: object) -> Sequence[object]:
    """The values a symbolic value holds (what a walk of the loaded object would reach)."""
    if isinstance(node, list | tuple):
        return node
    if isinstance(node, PDict):
        return [x for pair in node.items for x in pair]
    if isinstance(node, PSet):
        return node.items
    if isinstance(node, CallResult):
        return (node.args, node.kwargs, node.items, node.state)
    if isinstance(node, PersistentRef):
        return (node.pid,)
    return ()


def expanded_size(root: object, sizes: dict[int, int] | None = None) -> tuple[int, int]:
    """(distinct containers, objects visited) when `root` is walked as a tree.

    Memo references (GET) and DUP make one container appear in many places; a walk that follows
    every reference (repr, deepcopy, JSON, a naive scanner) visits it each time. This counts
    those visits without making them (each container once, memoised by identity); a container
    reached again through a cycle counts once.
    """
    if sizes is None:
        sizes = {}
    active: set[int] = set()
    todo: list[tuple[object, bool]] = [(root, False)]
    scalars = PLAIN_KEYS
    while todo:
        node, finished = todo.pop()
        key = id(node)
        if finished:
            total = 1
            for child in children(node):
                total += 1 if type(child) in scalars else sizes.get(id(child), 1)
            sizes[key] = total
            active.discard(key)
            continue
        if key in sizes or key in active:
            continue
        kids = children(node)
        if not kids:
            sizes[key] = 1
            continue
        active.add(key)
        todo.append((node, True))
        todo.extend(
            (child, False)
            for child in kids
            if type(child) not in scalars and id(child) not in sizes and id(child) not in active
        )
    return len(sizes), sizes.get(id(root), 1)


def shared_expansion(shared: list[object]) -> tuple[int, int]:
    """(distinct objects, extra visits) for the values memo GETs and DUPs pushed again: each
    push makes a full walk visit the whole (expanded) object once more. Sizes are memoised
    across the values, so the cost is the shared objects' distinct nodes, not their expansion.
    """
    counts: dict[int, tuple[object, int]] = {}
    for value in shared:
        _, n = counts.get(id(value), (value, 0))
        counts[id(value)] = (value, n + 1)
    sizes: dict[int, int] = {}
    extra = 0
    for value, n in counts.values():
        extra += n * expanded_size(value, sizes)[1]
    return len(counts), extra
