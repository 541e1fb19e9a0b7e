"""Which mosquitto the integration and e2e rings run: ``MOSQUITTO_BIN``, its tools and plugins.

``MOSQUITTO_BIN`` names the ``mosquitto`` executable (default: the one on PATH, Debian's
``/usr/sbin/mosquitto``). Its tools (``mosquitto_pub``, ``mosquitto_ctrl``, …) are taken from
beside it: the same folder, or ``../bin`` as in an install prefix (``/usr/sbin`` + ``/usr/bin``,
or ``PREFIX/sbin`` + ``PREFIX/bin`` of ``build-mosquitto.sh``), never from another install, so a
2.1 broker is not driven by 2.0 tools (scripts started with ``mosquitto_env()`` find them first
on PATH). A prefix whose ``lib/`` holds ``libmosquitto.so.1`` (a
build that is not installed system-wide) is put on ``LD_LIBRARY_PATH`` for every process started
from here. The version comes from the broker's own ``-h`` line, so a test can say where the two
lines differ (``MOSQUITTO_VERSION >= (2, 1)``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ENV_NAME = "MOSQUITTO_BIN"
_chosen = os.environ.get(ENV_NAME, "")
MOSQUITTO = _chosen or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
_HOME = Path(MOSQUITTO).resolve().parent
_PREFIX = _HOME.parent


def _library_dir() -> str | None:
    lib = _PREFIX / "lib"
    return str(lib) if (lib / "libmosquitto.so.1").exists() and lib != Path("/usr/lib") else None


LIBRARY_DIR = _library_dir()


def mosquitto_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a mosquitto process, tool or script: ``base`` (default: ours) plus its
    libraries, and its folders first on PATH (a script that runs ``mosquitto_ctrl`` gets this one's)."""
    env = dict(os.environ if base is None else base)
    if _chosen:
        env["PATH"] = os.pathsep.join([str(_HOME), str(_PREFIX / "bin"), env.get("PATH", "")])
    if LIBRARY_DIR is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (LIBRARY_DIR, env.get("LD_LIBRARY_PATH")) if p)
    return env


def tool(name: str) -> str:
    """The path of ``mosquitto_<name>`` that belongs to the broker under test."""
    for folder in (_HOME, _PREFIX / "bin"):
        if (folder / name).is_file():
            return str(folder / name)
    if not _chosen and (found := shutil.which(name)):
        return found
    raise FileNotFoundError(
        f"{name} is not beside {ENV_NAME}={MOSQUITTO} (looked in {_HOME} and {_PREFIX / 'bin'})"
    )


def _plugin(name: str) -> str:
    """A plugin of the broker under test: its prefix's lib/ (a build, eclipse-mosquitto's /usr/lib)
    or Debian's multiarch folder."""
    for folder in (_PREFIX / "lib", _PREFIX / "lib" / "x86_64-linux-gnu", _PREFIX / "lib" / "mosquitto"):
        if (folder / name).is_file():
            return str(folder / name)
    return str(_PREFIX / "lib" / "x86_64-linux-gnu" / name)  # Debian's, where the docs say it is


DYNSEC_PLUGIN = _plugin("mosquitto_dynamic_security.so")


def _version() -> tuple[int, ...]:
    try:
        done = subprocess.run(
            [MOSQUITTO, "-h"], capture_output=True, text=True, timeout=10, env=mosquitto_env(), check=False
        )
    except OSError:
        return (0,)
    found = re.search(r"mosquitto version (\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    return tuple(int(part) for part in found.groups()) if found else (0,)


MOSQUITTO_VERSION = _version()
VERSION_TEXT = ".".join(map(str, MOSQUITTO_VERSION))


def describe() -> str:
    """One line for pytest's header: which broker this run tests."""
    source = f"{ENV_NAME}={MOSQUITTO}" if _chosen else f"{MOSQUITTO} (set {ENV_NAME} to test another)"
    return f"mosquitto {VERSION_TEXT} under test: {source}"


def run_tool(name: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``mosquitto_<name>`` of the broker under test (``check=True`` and a timeout by default)."""
    options: dict[str, object] = {"check": True, "timeout": 15, "env": mosquitto_env(), "text": True}
    options.update(kwargs)
    return subprocess.run([tool(name), *args], **options)  # type: ignore[call-overload, no-any-return]
