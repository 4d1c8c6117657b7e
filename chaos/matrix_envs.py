"""The environments of ``redis-resilience matrix --client-versions redis==8.1.0 ...``: one per requirement.

An environment is ``requirements.lock`` with one requirement changed (every other package pinned as locked, its
hashes checked) and the pack itself, editable, from this checkout. ``uv`` (the one installed beside the running
pack, else the one on PATH) resolves each of them up front, so that a bad requirement is refused before any cell
runs, and builds it at the first cell that needs it. Environments are cached by what makes them (the lock, the
requirement, pyproject.toml, the checkout and the Python), under ``--envs-dir`` (``$REDIS_RESILIENCE_ENVS``, else
``~/.cache/redis-resilience/envs``): a second matrix reuses them without asking the index again. A directory
counts as built only once its marker is written, the last step of a build; a build holds a file lock, so two
matrices never build the same one at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from recovery.compare import CompareError

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
MARKER = "redis-resilience-env.json"
SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][A-Za-z0-9.+!_-]*)\s*$")
UV_TIMEOUT_S = 600


class EnvError(Exception):
    """An environment that could not be built: its cells are rows saying why, and the matrix goes on."""


def normalized(name: str) -> str:
    """A package name as the lock spells it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_blocks(text: str) -> dict[str, list[str]]:
    """The lock's entries by package name, each with its lines (``name==version ; marker``, hashes, comments)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = blocks.setdefault(normalized(line.split("==", 1)[0].strip()), [])
        if current is not None:
            current.append(line)
    return blocks


def default_envs_dir() -> Path:
    if os.environ.get("REDIS_RESILIENCE_ENVS"):
        return Path(os.environ["REDIS_RESILIENCE_ENVS"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "redis-resilience" / "envs"


def uv_executable() -> str:
    """The ``uv`` of the running pack's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise CompareError("--client-versions needs uv: it is neither beside this Python nor on PATH (pip install uv)")
    return found


def one_line(text: str, limit: int = 400) -> str:
    """A tool's error output as one line: uv's cause, without its ``error:``/``cause:`` prefixes."""
    lines = [re.sub(r"^(error|cause|hint|warning):\s*", "", line.strip()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("No solution found when resolving")] or lines
    line = " ".join(" ".join(lines).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def same_version(version: str) -> str:
    """A release number without its trailing zeros (``==8.1`` installs 8.1.0): what two spellings share."""
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class ClientVersion:
    """One requirement of ``--client-versions`` and where its environment lives."""

    name: str  # as the lock spells it
    version: str
    lock_entry: str  # the lock's first line for the package (``redis==8.2.0``, its marker if any)
    path: Path

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def locust(self) -> Path:
        return self.path / "bin" / "locust"

    def built(self) -> dict[str, object] | None:
        """The marker of a finished build, or None."""
        try:
            marker = json.loads((self.path / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and self.locust.exists() else None

    def requirements_in(self) -> str:
        """The lock with this one requirement changed, plus the pack's own requirements (pyproject.toml)."""
        blocks = lock_blocks(LOCK.read_text(encoding="utf-8"))
        marker = self.lock_entry.split(";", 1)[1].rstrip(" \\") if ";" in self.lock_entry else ""
        blocks[self.name] = [f"{self.spec}{f' ;{marker}' if marker else ''}"]
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        own = "\n".join(project.get("dependencies", []))
        return "\n".join(line for block in blocks.values() for line in block) + "\n" + own + "\n"


def cache_key(name: str, version: str) -> str:
    digest = hashlib.sha256()
    parts = [LOCK.read_bytes(), (ROOT / "pyproject.toml").read_bytes(), f"{name}=={version}".encode()]
    parts += [str(ROOT).encode(), sys.version.encode(), os.path.realpath(sys.executable).encode()]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return f"{name}-{version}-{digest.hexdigest()[:12]}"


def parse_client_versions(specs: list[str], envs_dir: Path) -> list[ClientVersion]:
    """Each ``name==version`` of a package in the lock, once (CompareError: one line)."""
    try:
        blocks = lock_blocks(LOCK.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{LOCK}: cannot read it: {exc.strerror or exc}") from None
    versions: list[ClientVersion] = []
    for spec in specs:
        match = SPEC.match(spec)
        if match is None:
            raise CompareError(f"--client-versions {spec!r}: expected name==version (redis==8.1.0)")
        name, version = normalized(match[1]), match[2]
        if name not in blocks:
            raise CompareError(f"--client-versions {spec}: {match[1]} is not in requirements.lock")
        if any(v.name == name and v.version == version for v in versions):
            raise CompareError(f"--client-versions {spec}: given twice")
        versions.append(ClientVersion(name, version, blocks[name][0], envs_dir / cache_key(name, version)))
    return versions


def resolve(uv: str, cv: ClientVersion) -> str:
    """The environment's requirements, every package pinned and hashed (``uv pip compile``); EnvError if none."""
    with tempfile.TemporaryDirectory(prefix="redis-resilience-") as tmp:
        source, target = Path(tmp) / "requirements.in", Path(tmp) / "requirements.txt"
        source.write_text(cv.requirements_in(), encoding="utf-8")
        options = ["--generate-hashes", "--no-header", "--no-annotate", "--python", sys.executable]
        done = run([uv, "pip", "compile", "-q", str(source), *options, "-o", str(target)])
        if done.returncode != 0:
            fail(done)
        return target.read_text(encoding="utf-8")


def check_resolvable(uv: str, versions: list[ClientVersion]) -> dict[str, str]:
    """Up front, before any cell: each spec's pinned requirements (none for an environment already built)."""
    resolved = {}
    for cv in versions:
        if cv.built() is not None:
            continue
        try:
            resolved[cv.spec] = resolve(uv, cv)
        except EnvError as exc:
            where = "with requirements.lock and pyproject.toml"
            raise CompareError(f"--client-versions {cv.spec} does not resolve {where}: {exc}") from None
    return resolved


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=UV_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(one_line(str(exc))) from None


def fail(done: subprocess.CompletedProcess[str]) -> NoReturn:
    raise EnvError(one_line(done.stderr or done.stdout or f"exit {done.returncode}"))


@dataclass(frozen=True)
class BuiltEnv:
    """An environment ready for a cell: its ``locust``, the version its Python imports, built now or reused."""

    locust: Path
    installed: str
    reused: bool
    seconds: float


def build(uv: str, cv: ClientVersion, requirements: str | None) -> BuiltEnv:
    """The environment of ``cv``, from the cache or built now (EnvError: one line saying why)."""
    started = time.monotonic()
    try:
        cv.path.parent.mkdir(parents=True, exist_ok=True)
        with open(cv.path.parent / f"{cv.path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another matrix building the same environment: wait for it
            marker = cv.built()
            if marker is None:
                shutil.rmtree(cv.path, ignore_errors=True)  # a build cut short: from the start
                marker = install(uv, cv, requirements if requirements is not None else resolve(uv, cv))
                reused = False
            else:
                reused = True
    except OSError as exc:
        raise EnvError(f"{cv.path}: {exc.strerror or exc}") from None
    return BuiltEnv(cv.locust, str(marker["installed"]), reused, round(time.monotonic() - started, 1))


def install(uv: str, cv: ClientVersion, requirements: str) -> dict[str, object]:
    python = ["--python", str(cv.python)]
    pinned = cv.path / "requirements.txt"
    steps = [
        [uv, "venv", "-q", "--python", sys.executable, str(cv.path)],
        [uv, "pip", "install", "-q", *python, "--require-hashes", "-r", str(pinned)],
        [uv, "pip", "install", "-q", *python, "--no-deps", "-e", str(ROOT)],  # the pack, from this checkout
    ]
    for i, command in enumerate(steps):
        if i == 1:
            pinned.write_text(requirements, encoding="utf-8")
        done = run(command)
        if done.returncode != 0:
            fail(done)
    probe = run([str(cv.python), "-c", f"from importlib.metadata import version; print(version({cv.name!r}))"])
    installed = probe.stdout.strip()
    if probe.returncode != 0 or same_version(installed) != same_version(cv.version):
        raise EnvError(f"asked for {cv.spec}, the environment has {installed or one_line(probe.stderr)}")
    marker: dict[str, object] = {
        "spec": cv.spec,
        "installed": installed,
        "checkout": str(ROOT),
        "python": sys.version.split()[0],
        "built_at": time.time(),
    }
    (cv.path / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return marker


class Environments:
    """The environments of one matrix, checked up front (CompareError: one line); each built or found once, at
    its first cell, and a failed build kept, so the other cells of its requirement say why without a retry."""

    def __init__(self, specs: list[str], envs_dir: str | None) -> None:
        self.dir = Path(envs_dir) if envs_dir else default_envs_dir()
        self.versions = parse_client_versions(specs, self.dir)
        self.uv = uv_executable()
        self._resolved = check_resolvable(self.uv, self.versions)
        self._done: dict[str, BuiltEnv | EnvError] = {}

    def get(self, cv: ClientVersion) -> BuiltEnv:
        done = self._done.get(cv.spec)
        if done is None:
            try:
                done = build(self.uv, cv, self._resolved.get(cv.spec))
            except EnvError as exc:
                done = exc
            self._done[cv.spec] = done
        if isinstance(done, EnvError):
            raise done
        return done

    def summary(self) -> dict[str, dict[str, object]]:
        """What matrix.json says of each environment: where, the version its Python imports, reused or built."""
        out: dict[str, dict[str, object]] = {}
        for cv in self.versions:
            done = self._done.get(cv.spec)
            if isinstance(done, BuiltEnv):
                built = {"installed": done.installed, "reused": done.reused, "seconds": done.seconds}
                out[cv.spec] = {"path": str(cv.path), **built}
            elif done is not None:
                out[cv.spec] = {"path": str(cv.path), "error": str(done)}
        return out
