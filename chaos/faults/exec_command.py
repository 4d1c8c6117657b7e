"""exec: run a command of the user's, so the pack measures around a failure only the provider's own tool
triggers: ``az redis force-reboot``, ``aws elasticache test-failover``, ``kubectl delete pod``,
``systemctl restart redis``. The fault's window and the witness's outage are the scheduler's, as for any
fault; this module runs the command and reports what it did (docs/faults.md#exec-a-command-of-yours).

How it runs, and why:

- **An argv list, never a shell.** The profile gives ``command: [az, redis, force-reboot, ...]``; nothing
  is expanded, quoted or globbed. A shell is there when asked for by name: ``[sh, -c, '...']``.
- **Its environment** is the pack's own (a provider's CLI needs ``PATH``, ``HOME``, its login and config),
  plus the variables ``env`` maps in: ``{NAME_IN_COMMAND: NAME_IN_PACK_ENV}``, read when the command
  starts. Every value read through ``env`` is a secret: masked (``***``) wherever it shows in the command's
  output and errors, before they are cut to size, so no end of a secret survives a cut. A variable
  missing is bad input found before the test (``check()``), and again when the command would start.
- **Its own session** (a process group of its own), stdin ``/dev/null`` (a tool that prompts reads end of
  file instead of hanging), stdout and stderr into unnamed temporary files rather than pipes: the fault
  waits for the command itself, not for whatever it left holding its output. Past ``timeout_s``, or when
  the fault is cut short (``chaos.fault_timeout_s``, the test stopping, Ctrl-C), the whole group is
  SIGKILLed and reaped: nothing of it outlives the fault. What the command leaves running after it
  exited of its own accord (a daemon it started) is the command's business.
- **Cooperative**: ``subprocess`` is gevent's here (Locust patches the standard library before the pack
  imports it), so the hub keeps serving the users and the witness while the command runs.
- **revert_command** runs at the revert: ``hold_s`` after the command returned, or at once when the test
  stops; only if the command was started (a command that could not start changed nothing). Its output
  goes into the details under ``revert`` when the fault's window closes after it ran.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import IO, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from chaos.faults.base import FaultBase, FaultParams, FaultTarget, MissingPrerequisite
from chaos.faults.registry import register_fault
from config.redact import redact_secrets

OUTPUT_LIMIT_BYTES = 2048  # each of stdout and stderr, in the details
READ_LIMIT_BYTES = 65536  # the end of an output read to mask and cut (a secret cut by this read is cut off again)
LINE_LIMIT_CHARS = 300  # the stderr line quoted in an error
REAP_TIMEOUT_S = 5.0  # a killed group's leader is reaped within this

VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _argv(value: Any) -> Any:
    """An argv list as the profile must write it; a shell string or a non-string argument is refused."""
    if isinstance(value, str):
        first = value.split()[0] if value.split() else "..."
        raise ValueError(
            f"expected a list of arguments (argv), not a shell string: write it as a list, e.g. [{first}, ...] "
            "(the pack runs no shell; for one, [sh, -c, '...'])"
        )
    if isinstance(value, list):
        for index, arg in enumerate(value):
            if not isinstance(arg, str):
                raise ValueError(
                    f"argument {index} ({arg!r}): expected a string: quote every argument YAML would read as a "
                    "number or a boolean (node group '0001' unquoted is the number 1)"
                )
        if value and not value[0]:
            raise ValueError("the executable (argument 0): expected a name or a path, got an empty string")
    return value


class ExecParams(FaultParams):
    name: Literal["exec"]
    command: list[str] = Field(
        min_length=1,
        description="The command as a list of arguments (argv), e.g. [az, redis, force-reboot, --name, N, ...]; "
        "never a shell string (for a shell: [sh, -c, '...']). Runs where the scheduler is (local or master).",
    )
    env: dict[VarName, VarName] = Field(
        default_factory=dict,
        description="Variables for the command read from the pack's environment: {NAME_IN_COMMAND: NAME_IN_PACK_ENV}; "
        "their values are masked in everything the pack prints or reports. The command inherits the rest of the "
        "pack's environment (PATH, HOME, the CLI's own login).",
    )
    timeout_s: float = Field(
        30.0,
        gt=0,
        description="The command (and revert_command) is killed, its whole process group, after this long: a failed "
        "injection (revert). At most chaos.fault_timeout_s.",
    )
    expect_exit: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="The exit codes that count as success."
    )
    revert_command: list[str] | None = Field(
        None,
        min_length=1,
        description="Run at the revert (hold_s after the command returned, at once when the test stops), with the "
        "same env and timeout_s, if the command was started; an exit outside expect_exit is a revert_error.",
    )
    hold_s: float = Field(
        0.0,
        ge=0,
        description="How long the fault lasts after the command returned: then revert_command runs and the next fault "
        "may start.",
    )

    @field_validator("command", "revert_command", mode="before")
    @classmethod
    def _argv_lists(cls, value: Any) -> Any:
        return _argv(value)

    def own_timeout_s(self) -> float | None:
        return self.timeout_s


class ExecFailed(Exception):
    """The command could not start, exited with a code outside ``expect_exit``, or ran past ``timeout_s``."""


def read_output(file: IO[bytes], mask: Callable[[str], str]) -> tuple[str, int]:
    """The end of what the command wrote to ``file``, masked, then cut to :data:`OUTPUT_LIMIT_BYTES`; and how many
    bytes it wrote in all."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - READ_LIMIT_BYTES))
    text = mask(file.read().decode("utf-8", "replace"))
    data = text.encode()
    if size <= READ_LIMIT_BYTES and len(data) <= OUTPUT_LIMIT_BYTES:
        return text, size
    return f"[cut: {size} bytes in all, the end shown]\n" + data[-OUTPUT_LIMIT_BYTES:].decode("utf-8", "ignore"), size


def last_line(*texts: str) -> str:
    """The last non-empty line of the first text that has one (stderr, then stdout), cut to a readable length."""
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("[cut: ")]
        if lines:
            line = lines[-1]
            return line if len(line) <= LINE_LIMIT_CHARS else line[: LINE_LIMIT_CHARS - 3] + "..."
    return ""


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's whole process group (its session) and reap its leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its leader not reaped yet: the group id is still its own
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(REAP_TIMEOUT_S)


@register_fault(ExecParams)
class Exec(FaultBase):
    name: ClassVar[str] = "exec"
    params: ExecParams

    def __init__(self, params: ExecParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.hold_s
        self.started = False  # the command was started: the revert runs revert_command
        self.reverted: dict[str, Any] | None = None  # what revert_command did, for the window's details

    def check(self) -> None:
        """Before the test: every ``env`` variable is set and each executable is found (nothing is run)."""
        self._environment()
        for field, argv in (("command", self.params.command), ("revert_command", self.params.revert_command)):
            if argv is not None and shutil.which(argv[0]) is None:
                raise MissingPrerequisite(f"{field}: {argv[0]} is not found (not on PATH, or not executable)")

    def inject(self) -> dict[str, Any]:
        return self._run(self.params.command, "command")

    def revert(self) -> None:
        argv = self.params.revert_command
        if argv is None or not self.started:
            return
        details = self._run(argv, "revert_command")  # raises: a revert_error (and run again if the test stops)
        self.started = False
        self.reverted = details

    def window_closed(self) -> dict[str, Any]:
        return {} if self.reverted is None else {"revert": self.reverted}

    def _environment(self) -> dict[str, str]:
        """The ``env`` variables, read from the pack's environment now."""
        values = {}
        for name, source in self.params.env.items():
            value = os.environ.get(source)
            if value is None:
                raise MissingPrerequisite(f"env: {name} comes from the environment variable {source}, which is not set")
            values[name] = value
        return values

    def _run(self, argv: list[str], field: str) -> dict[str, Any]:
        """Run ``argv`` to its end (or its timeout); its details, or :class:`ExecFailed` with one line."""
        try:
            variables = self._environment()
        except MissingPrerequisite as exc:
            raise ExecFailed(f"{field}: {exc}") from None
        secrets = list(variables.values())  # every value read through env: masked wherever it shows

        def mask(text: str) -> str:
            return redact_secrets(text, secrets)

        what = f"{'' if field == 'command' else field + ': '}{argv[0]}"
        timeout_s = self.params.timeout_s
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env={**os.environ, **variables},
                    start_new_session=True,
                )
            except OSError as exc:  # not found, not executable
                raise ExecFailed(f"{what} could not start: {mask(exc.strerror or str(exc))}") from None
            if field == "command":
                self.started = True
            try:
                code: int | None = process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                if process.returncode is None:  # its timeout, or this fault cut short: nothing of it stays
                    kill_group(process)
            ran_ms = round((time.monotonic() - started) * 1000, 3)
            stdout, stdout_bytes = read_output(out, mask)
            stderr, stderr_bytes = read_output(err, mask)
        line = last_line(stderr, stdout)
        said = f": {line}" if line else ""
        if code is None:
            raise ExecFailed(f"{what} did not finish within timeout_s={timeout_s:g}s: killed (its process group){said}")
        if code not in self.params.expect_exit:
            expected = ", ".join(map(str, self.params.expect_exit))
            how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
            raise ExecFailed(f"{what} {how} (expected {expected}){said}")
        return {
            "exit_code": code,
            "ran_ms": ran_ms,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_bytes": stdout_bytes,
            "stderr_bytes": stderr_bytes,
        }
