"""The PEP 517 / PEP 660 build backend of banquet-feast: a pure-Python wheel (or an editable
one, a ``.pth`` pointing here) written with the standard library only, so installing needs
nothing from a package index.

Before building for installation it refuses an environment that holds a real Feast: both
distributions own the ``feast`` package and the ``feast`` command, and installing one over
the other leaves a mix of files. (A prebuilt wheel installs without running any code; then
``import feast`` refuses instead, see ``feast/_guard.py``.)
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "py3-none-any"


def _project() -> dict[str, object]:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib

        data: dict[str, object] = tomllib.loads(text)["project"]
        return data
    except ImportError:  # Python 3.10: the few keys this file holds, one per line
        out: dict[str, object] = {}
        for key in ("name", "version", "description", "requires-python"):
            m = re.search(rf'^{key} = "([^"]*)"', text, re.M)
            out[key] = m.group(1) if m else ""
        deps = re.search(r"^dependencies = \[(.*?)\]", text, re.M | re.S)
        out["dependencies"] = re.findall(r'"([^"]+)"', deps.group(1)) if deps else []
        scripts = re.search(r"^\[project\.scripts\]\n((?:\w.*\n?)*)", text, re.M)
        out["scripts"] = dict(re.findall(r'^(\S+) = "([^"]+)"', scripts.group(1), re.M))
        return out


def _dist_name() -> str:
    return str(_project()["name"]).replace("-", "_")


def _dist_info() -> str:
    return f"{_dist_name()}-{_project()['version']}.dist-info"


def _metadata() -> str:
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '')}",
    ]
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]  # type: ignore[attr-defined]
    return "\n".join(lines) + "\n"


def _entry_points() -> str:
    scripts = _project().get("scripts", {})
    body = "".join(f"{k} = {v}\n" for k, v in scripts.items())  # type: ignore[attr-defined]
    return f"[console_scripts]\n{body}"


def _refuse_real_feast() -> None:
    """Fail the build when the interpreter being installed into has a real Feast. pip runs
    this backend with that interpreter but hides its site-packages (PYTHONPATH points at a
    sitecustomize that removes them), so ask a child without the overlay."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    probe = (
        "import importlib.metadata as m\n"
        "try:\n    print(m.distribution('feast').version)\n"
        "except m.PackageNotFoundError:\n    pass\n"
    )
    try:
        found = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return  # cannot tell: the import-time guard still refuses a mix
    if found:
        raise RuntimeError(
            f"banquet-feast: this environment has Feast {found} installed; both provide the "
            "`feast` package and command. Uninstall Feast first (pip uninstall feast), then "
            "install banquet-feast."
        )


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, files: dict[str, bytes]) -> str:
    info = _dist_info()
    files[f"{info}/METADATA"] = _metadata().encode()
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: banquet-feast backend\nRoot-Is-Purelib: true\n"
        f"Tag: {TAG}\n"
    ).encode()
    files[f"{info}/entry_points.txt"] = _entry_points().encode()
    files[f"{info}/top_level.txt"] = b"feast\n"
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{_dist_name()}-{_project()['version']}-{TAG}.whl"
    with zipfile.ZipFile(Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), d)
    return name


def _package_files() -> dict[str, bytes]:
    pkg = ROOT / "feast"
    return {
        p.relative_to(ROOT).as_posix(): p.read_bytes()
        for p in sorted(pkg.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".typed")
    }


# --- PEP 517 -----------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: object = None) -> list[str]:
    return []


def build_wheel(
    wheel_directory: str, config_settings: object = None, metadata_directory: object = None
) -> str:
    _refuse_real_feast()
    return _write_wheel(wheel_directory, _package_files())


def build_editable(
    wheel_directory: str, config_settings: object = None, metadata_directory: object = None
) -> str:
    """PEP 660: a wheel whose ``.pth`` puts this folder on ``sys.path`` (edits take effect
    without reinstalling)."""
    _refuse_real_feast()
    return _write_wheel(wheel_directory, {f"{_dist_name()}.pth": f"{ROOT}\n".encode()})


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    base = f"{_dist_name()}-{_project()['version']}"
    files = {"pyproject.toml": (ROOT / "pyproject.toml").read_bytes()}
    files["_build/banquet_feast_backend.py"] = Path(__file__).read_bytes()
    files.update(_package_files())
    files["PKG-INFO"] = _metadata().encode()
    name = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / name, "w:gz") as tf:
        for n, d in files.items():
            ti = tarfile.TarInfo(f"{base}/{n}")
            ti.size, ti.mtime, ti.mode = len(d), 1577836800, 0o644
            tf.addfile(ti, io.BytesIO(d))
    return name
