"""Which stored on-demand functions a process may run.

The registry holds an on-demand view's function as text (``banquet.udf``), so whoever can write
the registry could otherwise run code in every process that reads features. A stored function
is compiled and run only if the SHA-256 of its record (``function_hash``) is trusted, in this
order:

1. ``trust_registry_code: true`` in ``feature_store.yaml``: everything the registry holds;
2. ``trusted_functions:`` in ``feature_store.yaml`` (pinned hashes);
3. ``$BANQUET_TRUSTED_FUNCTIONS`` (comma-separated hashes);
4. functions defined in this process (on-demand views created from Python functions here,
   e.g. the ones passed to ``apply``);
5. the functions the store's feature repo defines (the folder holding ``feature_store.yaml``):
   its ``*.py`` files are imported once, on the first miss, and again only if they changed.
   These are the user's own files, so ``banquet apply`` then ``banquet serve`` (or a training
   script's ``FeatureStore(repo_path=...)``) in the repo needs no configuration.

Anything else raises ``UntrustedFunction`` before the stored text is compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banquet.errors import ConfigError, FunctionNotSerializable, UntrustedFunction

if TYPE_CHECKING:
    from banquet.config import RepoConfig
    from banquet.udf import UserFunction

ENV_VAR = "BANQUET_TRUSTED_FUNCTIONS"
log = logging.getLogger("banquet.trust")
_PREFIX = b"banquet-function/1\n"  # versions the encoding below
_HEX = frozenset("0123456789abcdef")

_lock = threading.RLock()  # loading a repo edits sys.path / sys.modules: one at a time
_LOCAL: set[str] = set()  # hashes of functions defined in this process
_loading = threading.local()  # set while this thread imports a repo only to learn its hashes


def function_hash(name: Any, source: Any, globals_: Any) -> str:
    """SHA-256 (64 lowercase hex digits) of what rebuilding would execute: the function's
    name, its source and every module-level name it binds (modules, attributes, literals), as
    canonical JSON (sorted keys, no spaces, ASCII), so any change to any of them changes it."""
    doc = {"name": name, "source": source, "globals": globals_ or {}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(_PREFIX + text.encode("ascii")).hexdigest()


def is_hash(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def env_hashes() -> frozenset[str]:
    """The hashes in ``$BANQUET_TRUSTED_FUNCTIONS``; a malformed entry is a ``ConfigError``."""
    raw = os.environ.get(ENV_VAR, "")
    out = set()
    for part in raw.split(","):
        h = part.strip().lower()
        if not h:
            continue
        if not is_hash(h):
            raise ConfigError(
                f"${ENV_VAR} holds {part.strip()[:80]!r}; each comma-separated entry must be the "
                "64 hex digits of a function's SHA-256 (`banquet functions` lists them)"
            )
        out.add(h)
    return frozenset(out)


def note_local(digest: str) -> None:
    """Record the hash of a function this process defined (called by ``UserFunction``)."""
    if not getattr(_loading, "active", False):
        _LOCAL.add(digest)


def _local_hashes() -> set[str]:
    """Hashes of the functions defined in this process, including those captured but never
    recorded yet (a training script that imported its repo's views without applying)."""
    from banquet.udf import captured

    for fn in captured():
        # one with no stored form: nothing in a registry can match it
        with contextlib.suppress(FunctionNotSerializable):
            note_local(fn.sha256)
    return _LOCAL


# --- the feature repo's own functions --------------------------------------------------------


@dataclass
class _RepoFunctions:
    signature: tuple[tuple[str, int, int], ...]  # (file, mtime_ns, size) when loaded
    hashes: dict[str, str] = field(default_factory=dict)  # view name -> hash
    problem: str | None = None  # why the repo could not be loaded


_REPOS: dict[Path, _RepoFunctions] = {}


def _signature(repo: Path) -> tuple[tuple[str, int, int], ...]:
    from banquet.repo import repo_files

    out = []
    for p in repo_files(repo):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def repo_functions(repo: Path) -> _RepoFunctions:
    """The on-demand functions ``repo``'s files define, by view name (loaded at most once per
    version of the files)."""
    with _lock:
        sig = _signature(repo)
        known = _REPOS.get(repo)
        if known is None or known.signature != sig:
            known = _REPOS[repo] = _load(repo, sig)
        return known


def _load(repo: Path, sig: tuple[tuple[str, int, int], ...]) -> _RepoFunctions:
    """Import the repo to learn its functions' hashes, then put ``sys.modules`` back as it was:
    the process asked for features, not for the repo's modules."""
    from banquet import repo as repo_mod
    from banquet import udf

    if not sig:
        return _RepoFunctions(sig)  # a folder with only feature_store.yaml defines nothing
    modules = dict(sys.modules)
    loaded = set(repo_mod._loaded_modules)
    before = set(udf.captured())
    out = _RepoFunctions(sig)
    _loading.active = True
    try:
        contents = repo_mod.load_repo(repo)
        for name, view in contents.on_demand_feature_views.items():
            with contextlib.suppress(FunctionNotSerializable):
                out.hashes[name] = view.udf.sha256
        for name, view in contents.feature_views.items():  # a StreamFeatureView's udf
            if getattr(view, "stream_udf", None) is not None:
                with contextlib.suppress(FunctionNotSerializable):
                    out.hashes[name] = view.stream_udf.sha256
    except Exception as e:  # a broken repo trusts nothing
        # The refusal may reach an HTTP body: only the kind of failure there, the rest logged.
        out.problem = f"importing its files failed ({type(e).__name__}; see the log)"
        log.warning("feature repo %s could not be loaded to check functions: %s", repo, e)
    finally:
        _loading.active = False
        for fn in set(udf.captured()) - before:  # the repo's, not "defined in this process"
            udf.forget_captured(fn)
        # Drop the repo's modules it added; put back what load_repo dropped or replaced (an
        # earlier load's modules, possibly of another repo). Other new imports stay.
        for name, mod in list(sys.modules.items()):
            if name not in modules and repo_mod._module_in(mod, repo):
                del sys.modules[name]
        for name, mod in modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
        repo_mod._loaded_modules.clear()
        repo_mod._loaded_modules.update(loaded)
    return out


# --- the policy ------------------------------------------------------------------------------


class TrustPolicy:
    """What one ``FeatureStore`` trusts: its config's settings plus the process-wide ones."""

    def __init__(self, config: RepoConfig | None = None) -> None:
        self.trust_all = bool(config and config.trust_registry_code)
        self.pinned = frozenset(h.lower() for h in (config.trusted_functions if config else []))
        repo = config.repo_path.resolve() if config is not None else None
        # Only a real feature repo's files are imported (not whatever folder a config names).
        self.repo = repo if repo is not None and (repo / "feature_store.yaml").is_file() else None

    def bind(self, views: Iterable[Any]) -> None:
        """Make the stored functions of ``views`` (read from the registry) ask this policy."""
        for view in views:
            view.udf.trust = self

    def reason(self, name: str, digest: str) -> str | None:
        """Why ``digest`` (the stored function of view ``name``) is trusted, or None."""
        if self.trust_all:
            return "trust_registry_code"
        if digest in self.pinned:
            return "pinned in feature_store.yaml"
        if digest in env_hashes():
            return f"pinned in ${ENV_VAR}"
        if digest in _local_hashes():
            return "defined in this process"
        if self.repo is not None and digest in repo_functions(self.repo).hashes.values():
            return "defined in the feature repo"
        return None

    def check(self, fn: UserFunction, view: str) -> None:
        """Raise ``UntrustedFunction`` unless ``fn`` (rebuilt from a record) may run."""
        digest = fn.sha256
        if self.reason(view, digest) is not None:
            return
        raise UntrustedFunction(
            f"on-demand feature view {view!r}: its stored function (sha256 {digest}) is not "
            f"trusted by this process, so it was not run; {self._why_not(view, digest)}. Fixes: "
            "run from the feature repo that defines it (after `banquet apply`), pin the hash in "
            f"feature_store.yaml `trusted_functions:` or in ${ENV_VAR} (check the code first: "
            "`banquet registry-dump`; `banquet functions` lists hashes), or set "
            "`trust_registry_code: true` to run whatever the registry holds"
        )

    def _why_not(self, view: str, digest: str) -> str:
        if self.repo is None:
            return "this process has no feature repo to compare it with"
        found = repo_functions(self.repo)
        if found.problem is not None:
            return f"the feature repo could not be compared: {found.problem}"
        if view not in found.hashes:
            return "the feature repo does not define this view"
        return (
            f"the feature repo defines a different function for it (sha256 {found.hashes[view]}): "
            "the registry was changed by someone else, or the repo was edited since "
            "`banquet apply`"
        )


DEFAULT = TrustPolicy()  # for views read from a registry outside any FeatureStore


def describe(policy: TrustPolicy, views: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """Per registered on-demand view: (name, hash, comparison with the repo's definition,
    why it is trusted or "NO"), for ``banquet functions``."""
    repo = repo_functions(policy.repo) if policy.repo is not None else None
    rows = []
    for name, view in sorted(views.items()):
        digest = view.udf.sha256
        if repo is None:
            compared = "-"
        elif repo.problem is not None:
            compared = "unloadable"
        elif name not in repo.hashes:
            compared = "absent"
        else:
            compared = "same" if repo.hashes[name] == digest else "differs"
        rows.append((name, digest, compared, policy.reason(name, digest) or "NO"))
    return rows
