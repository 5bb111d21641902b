"""One error hierarchy; each error carries the exit code the CLI turns it into."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes. 2 is Click's own (usage errors), so ours start at 3."""

    OK = 0
    ERROR = 1
    USAGE = 2
    BAD_INPUT = 3
    MODEL = 4
    OUTPUT = 5
    CHECK_FAILED = 6
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class AttnvizError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_status: ExitStatus = ExitStatus.ERROR


class InputError(AttnvizError):
    """Bad input data; the message names ``file:line`` and the field."""

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, source: str, reason: str, field: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.field = field
        super().__init__(f"{located(source, field)}: {reason}")


def located(source: str, field: str | None) -> str:
    """``file:line`` and the field, as errors and skipped-record lines name them (see :func:`one_line`)."""
    return one_line(f"{source}: field '{field}'" if field else source)


def one_line(text: str) -> str:
    """``text`` with its line breaks shown as escapes. Messages quote the input (file names, JSON keys, ids,
    labels): one problem must stay one line of a log, and no quoted text may start a line that seems attnviz's."""
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class ModelError(AttnvizError):
    """The model could not be loaded, or gives no usable attention."""

    exit_status = ExitStatus.MODEL


class OutputError(AttnvizError):
    """The report could not be written."""

    exit_status = ExitStatus.OUTPUT


class UnknownNameError(AttnvizError):
    """A registry lookup failed; the message lists the valid names."""

    exit_status = ExitStatus.USAGE

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.valid = valid
        super().__init__(f"unknown {kind} '{name}'; valid: {', '.join(valid)}")


class ThresholdError(AttnvizError):
    """A ``check`` threshold failed; the message names each failed metric."""

    exit_status = ExitStatus.CHECK_FAILED


class UsageError(AttnvizError, ValueError):
    """An option value that cannot be used as given (e.g. a threshold that is not ``NAME=VALUE``)."""

    exit_status = ExitStatus.USAGE
