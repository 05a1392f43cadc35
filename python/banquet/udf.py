"""Store a user's Python function in the registry and rebuild it in another process.

An on-demand feature view runs its function wherever features are read: in the process that
defined it, in a training job, in ``banquet serve``. The registry therefore holds the function
as text: its source (dedented, decorators removed) plus the module-level names it reads.

What a stored function may use:

* its arguments, local variables, builtins, and names it imports inside its body;
* modules imported at module level (``import numpy as np``), if the serving process can import
  them too (installed packages, not files of the feature repo);
* functions and classes imported from such modules (``from math import log``);
* module-level constants whose ``repr`` reads back as the same value (numbers, strings,
  bytes, booleans, None, and tuples/lists/dicts/sets of them).

Not supported, refused at apply with ``FunctionNotSerializable``: lambdas, closures (variables
of an enclosing function), functions without source (defined in a REPL or by ``exec``), and
module-level helpers, classes or objects defined in the feature repo itself. Annotations are
never evaluated when the function is rebuilt, so they may name anything.

A record is compiled only if its SHA-256 (``UserFunction.sha256``) is trusted by the process
(``banquet.trust``); a function captured here counts as defined by this process.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import dis
import importlib
import inspect
import linecache
import sys
import textwrap
import types
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from banquet.errors import FunctionNotSerializable, OnDemandFunctionError

if TYPE_CHECKING:
    from banquet.trust import TrustPolicy

_LITERAL_TYPES = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type(None),
    tuple,
    list,
    dict,
    set,
    frozenset,
)
# Rebuilt functions by (name, source, globals): a new registry version (a new catalog) reuses
# them instead of compiling again.
_BUILT: dict[tuple[str, str, str], types.FunctionType] = {}
_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"}
# Functions wrapped from Python functions in this process: their hashes are trusted
# (``banquet.trust``), worked out only when a stored function needs checking.
_CAPTURED: weakref.WeakSet[UserFunction] = weakref.WeakSet()


def captured() -> list[UserFunction]:
    return list(_CAPTURED)


def forget_captured(fn: UserFunction) -> None:
    _CAPTURED.discard(fn)


class UserFunction:
    """A callable that can be written to the registry (``record``) and read back (``from_record``).

    In the defining process it calls the original function; rebuilt from a record, it compiles
    the stored source on first call, once ``trust`` (the reading store's policy) allows it.
    """

    def __init__(
        self,
        owner: str,
        name: str,
        source: str | None,
        globals_: dict[str, dict[str, str]],
        fn: types.FunctionType | None = None,
        problem: str | None = None,
        view: str = "",
    ) -> None:
        self.owner = owner  # e.g. "on-demand feature view 'x'", for messages
        self.view = view  # the view's name, for the trust check
        self.name = name
        self.source = source
        self.globals = globals_
        self._fn = fn
        self._problem = problem
        # wraps a function of this process (not a record), storable or not
        self._local = fn is not None or problem is not None
        self._sha256: str | None = None
        self.trust: TrustPolicy | None = None  # set by the FeatureStore that read the record

    # --- capture ------------------------------------------------------------------------

    @classmethod
    def capture(cls, fn: Any, owner: str) -> UserFunction:
        """Wrap ``fn``. Whether it can be stored is decided by ``record`` (at apply, once the
        repo's modules are known), so a view defined in a notebook still works locally."""
        name = getattr(fn, "__name__", repr(fn))
        if not isinstance(fn, types.FunctionType):
            problem = f"it must be a plain Python function (def ...), got {type(fn).__name__}"
            return cls(owner, name, None, {}, None, problem)
        out = cls(owner, name, None, {}, fn)
        _CAPTURED.add(out)
        return out

    def record(self) -> dict[str, Any]:
        """The registry form; raises ``FunctionNotSerializable`` if the function has none."""
        if self.source is None and self._problem is None and self._fn is not None:
            try:
                self.source, self.globals = _describe(self._fn)
            except FunctionNotSerializable as e:
                self._problem = str(e)
        if self._problem is not None or self.source is None:
            raise FunctionNotSerializable(
                f"{self.owner}: function {self.name!r} cannot be stored in the registry: "
                f"{self._problem}"
            )
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.globals:
            out["globals"] = self.globals
        if self._local and self._sha256 is None:
            from banquet.trust import function_hash, note_local

            self._sha256 = function_hash(self.name, self.source, self.globals)
            note_local(self._sha256)
        return out

    @property
    def sha256(self) -> str:
        """The hash that trusting this function means (``banquet.trust.function_hash`` of its
        record); ``FunctionNotSerializable`` for a local function with no record."""
        if self._sha256 is None:
            if self._local:
                self.record()  # computes and notes it
            else:
                from banquet.trust import function_hash

                self._sha256 = function_hash(self.name, self.source, self.globals)
        assert self._sha256 is not None
        return self._sha256

    @classmethod
    def from_record(cls, d: dict[str, Any], owner: str, view: str = "") -> UserFunction:
        return cls(owner, d["name"], d["source"], dict(d.get("globals", {})), view=view)

    # --- call ---------------------------------------------------------------------------

    def build(self) -> types.FunctionType:
        """The function, rebuilt from the record on first use if this process trusts it
        (``UntrustedFunction`` otherwise, before anything of the record is compiled, imported
        or evaluated)."""
        fn = self._fn
        if fn is None:
            from banquet.trust import DEFAULT

            (self.trust or DEFAULT).check(self, self.view or self.name)
            key = (self.name, self.source or "", repr(sorted(self.globals.items())))
            fn = _BUILT.get(key)
            if fn is None:
                fn = _rebuild(self.owner, self.name, self.source or "", self.globals)
                if len(_BUILT) >= 256:
                    _BUILT.clear()
                _BUILT[key] = fn
            self._fn = fn
        return fn

    def __call__(self, *args: Any) -> Any:
        return (self._fn or self.build())(*args)

    def __repr__(self) -> str:
        return f"UserFunction({self.name!r})"


# --- describing a function -------------------------------------------------------------------


def _describe(fn: types.FunctionType) -> tuple[str, dict[str, dict[str, str]]]:
    if fn.__name__ == "<lambda>":
        raise FunctionNotSerializable("lambdas cannot be stored; define it with def")
    if fn.__code__.co_freevars:
        raise FunctionNotSerializable(
            f"it uses variables of an enclosing function ({', '.join(fn.__code__.co_freevars)}); "
            "define it at module level and read values from its inputs or module-level constants"
        )
    try:
        raw = inspect.getsource(fn)
    except (OSError, TypeError):
        raise FunctionNotSerializable(
            "its source code is not available (defined in an interactive session or by exec); "
            "define it in a .py file"
        ) from None
    text = textwrap.dedent(raw)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        raise FunctionNotSerializable("its source code could not be parsed on its own") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
        raise FunctionNotSerializable(
            "its source code is not a plain 'def' statement (async functions are not supported)"
        )
    lines = text.splitlines()
    source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"  # decorators dropped
    names = set(_global_names(fn.__code__))
    for default in [*node.args.defaults, *node.args.kw_defaults]:  # evaluated at def time
        if default is not None:
            names |= {n.id for n in ast.walk(default) if isinstance(n, ast.Name)}
    globals_: dict[str, dict[str, str]] = {}
    for name in sorted(names - {fn.__name__}):
        if name in fn.__globals__:
            globals_[name] = _global_entry(name, fn.__globals__[name], fn)
        # else: a builtin, or a name undefined everywhere (it would fail in any process)
    try:  # prove that the record alone rebuilds it
        _rebuild("the function", fn.__name__, source, globals_)
    except OnDemandFunctionError as e:
        raise FunctionNotSerializable(str(e)) from None
    return source, globals_


def _global_names(code: types.CodeType) -> Iterator[str]:
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS:
            if ins.opname != "LOAD_GLOBAL" and ins.opname != "LOAD_NAME":
                raise FunctionNotSerializable(f"it assigns the module-level name {ins.argval!r}")
            yield str(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, comprehensions, lambdas
            yield from _global_names(const)


def _global_entry(name: str, obj: Any, fn: types.FunctionType) -> dict[str, str]:
    if isinstance(obj, types.ModuleType):
        if _in_repo(obj.__name__):
            raise FunctionNotSerializable(
                f"it uses module {obj.__name__!r}, a file of the feature repo, which other "
                "processes (the feature server) do not import; move that code into the "
                "function or into an installed package"
            )
        return {"module": obj.__name__}
    if isinstance(obj, _LITERAL_TYPES):
        text = repr(obj)
        try:
            back = ast.literal_eval(text)
            same = type(back) is type(obj) and back == obj
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            same = False
        if same:
            return {"literal": text}
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if (
        isinstance(module, str)
        and isinstance(qualname, str)
        and "<locals>" not in qualname
        and module != fn.__module__
        and module != "__main__"
        and not _in_repo(module)
        and _lookup(module, qualname) is obj
    ):
        return {"module": module, "attr": qualname}
    where = (
        "the feature repo"
        if module == fn.__module__ or (isinstance(module, str) and _in_repo(module))
        else "this process"
    )
    raise FunctionNotSerializable(
        f"it uses the module-level name {name!r} ({type(obj).__name__} from {where}), which "
        "cannot be stored: only imported modules, functions and classes of installed packages, "
        "and literal constants are; move it into the function, or into an installed package"
    )


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _in_repo(module: str) -> bool:
    from banquet.repo import _loaded_modules

    return module.split(".")[0] in {m.split(".")[0] for m in _loaded_modules}


# --- rebuilding ------------------------------------------------------------------------------


def _rebuild(
    owner: str, name: str, source: str, globals_: dict[str, dict[str, str]]
) -> types.FunctionType:
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "banquet.udf.stored"}
    for var, entry in globals_.items():
        namespace[var] = _resolve_global(owner, var, entry)
    filename = f"<{owner}: {name}>"
    try:
        # Annotations stay strings: they may name types the stored globals do not include.
        code = compile(
            source,
            filename,
            "exec",
            flags=__future__.annotations.compiler_flag,
            dont_inherit=True,
        )
        exec(code, namespace)
    except Exception as e:
        raise OnDemandFunctionError(
            f"{owner}: function {name!r} could not be rebuilt from its stored source "
            f"({type(e).__name__}: {e}); re-run `banquet apply`"
        ) from e
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    fn = namespace.get(name)
    if not isinstance(fn, types.FunctionType):
        raise OnDemandFunctionError(
            f"{owner}: the stored source does not define function {name!r}; re-run `banquet apply`"
        )
    return fn


def _resolve_global(owner: str, var: str, entry: dict[str, str]) -> Any:
    if "literal" in entry:
        return ast.literal_eval(entry["literal"])
    module = entry["module"]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise OnDemandFunctionError(
            f"{owner}: its function needs module {module!r} (as {var!r}), which cannot be "
            f"imported in this process ({e}); install it where features are computed"
        ) from None
    if "attr" not in entry:
        return mod
    obj = _lookup(module, entry["attr"])
    if obj is None:
        raise OnDemandFunctionError(
            f"{owner}: its function needs {module}.{entry['attr']} (as {var!r}), which this "
            "process's version of the module does not have"
        )
    return obj
