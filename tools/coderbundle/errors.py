"""The one user-facing error type and its per-step subclasses.

Every error a user can cause or fix is a ``ToolError``: its ``str`` is the one
line the CLI prints (``file:line: what is wrong; what to do``).  The CLI edge
(``__main__``) catches it once, prints it and exits with ``exit_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CommandFailed",
    "CommandNotFound",
    "DeployEnvironmentError",
    "DeployError",
    "EnvError",
    "ImageBuildError",
    "MirrorError",
    "PublishError",
    "RegistryPushError",
    "RenderError",
    "RolloutError",
    "SettingsError",
    "ToolError",
    "UsageError",
    "ValidationFailed",
]

EXIT_FINDINGS = 1
EXIT_USAGE = 2


class ToolError(Exception):
    """A problem the user can fix; printed as one line, never as a traceback."""

    exit_code = EXIT_FINDINGS
    # A failure `coderbundle doctor` would have shown as a failed row: the CLI's error line
    # is followed by a pointer at `nox -s doctor`.  Set per class, or on one error (the
    # settings that did not load).
    doctor_predicts = False


class UsageError(ToolError):
    """Bad command-line input: unknown template name, bad flag value."""

    exit_code = EXIT_USAGE


class SettingsError(ToolError):
    """``bundle.toml`` or a template's ``template.toml`` is missing or wrong."""

    exit_code = EXIT_USAGE


class EnvError(ToolError):
    """The environment is wrong: a bad ``CODER_URL``, a missing token, daemon or CA file, a full disk."""

    exit_code = EXIT_USAGE
    doctor_predicts = True


class RolloutError(ToolError):
    """A rollout step refused or failed: an unhealthy canary, nothing recorded to roll back to."""


class RenderError(ToolError):
    """A template source could not be rendered (jinja2 syntax, undefined name)."""


class ValidationFailed(ToolError):
    """Validation found problems; the report has already been printed (unless ``--format json``)."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report  # the validate.Report, for publish's JSON summary


class ImageBuildError(ToolError):
    """An image could not be built or pushed."""


class RegistryPushError(ImageBuildError):
    """The registry refused a push (no login, no push rights) or could not be reached for it."""

    doctor_predicts = True


class MirrorError(ToolError):
    """The module mirror could not be made or does not match its MIRROR.json (nothing was swapped in)."""


class PublishError(ToolError):
    """A template could not be published to Coder."""


class DeployError(ToolError):
    """The server chart could not be rendered or deployed."""


class DeployEnvironmentError(DeployError):
    """What deploy or vault-setup needs is missing: a kubeconfig, Vault address or token, Helm."""

    exit_code = EXIT_USAGE
    doctor_predicts = True


class CommandNotFound(ToolError):
    """An external program (terraform, coder, helm) is not installed."""

    exit_code = EXIT_USAGE
    doctor_predicts = True


class CommandFailed(ToolError):
    """An external program exited non-zero; carries its (redacted) output."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str,
        stderr: str,
        message: str = "",
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(message or f"{argv[0]} exited with code {returncode}")

    def details(self) -> str:
        """The command's output, indented, for display under the one-line error."""
        parts = []
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text.strip():
                body = "\n".join(f"    {line}" for line in text.rstrip().splitlines())
                parts.append(f"  {name}:\n{body}")
        return "\n".join(parts)
