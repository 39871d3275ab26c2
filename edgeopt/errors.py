"""edgeopt's error types: user errors carry a one-line message that names the problem and the fix."""

from __future__ import annotations


class EdgeoptError(Exception):
    """A problem the user can fix (bad input, bad config); the CLI prints it on one line and exits 2."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class ModelFileError(EdgeoptError):
    """The model file is missing, unreadable, unsafe or not what its name says."""


class DataError(EdgeoptError):
    """Data (evaluation, calibration, training) is missing or does not fit the model."""


class ConfigError(EdgeoptError):
    """A pass, target or recipe config is invalid."""


class PipelineError(EdgeoptError):
    """The pass chain cannot run as declared; lists every problem found."""

    def __init__(self, problems: list[str], fix: str | None = None) -> None:
        self.problems = list(problems)
        head = "invalid pipeline: " + "; ".join(self.problems)
        super().__init__(head, fix)


class OutputError(EdgeoptError):
    """The output location cannot be written."""


class BackendUnavailable(EdgeoptError):
    """An optional backend dependency is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} is not installed", f"install it with: pip install 'edgeopt[{extra}]'")
        self.extra = extra
