"""Every error the retrain package raises derives from :class:`RetrainError`.

A run that fails records ``str(error)`` as its one-line reason, so each message names what
failed (the file, the column, the step, the measured difference) and what was expected.
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base class of the retrain package's errors."""


class DataError(RetrainError):
    """Input data is missing, unreadable or does not follow the documented schema."""


class StepError(RetrainError):
    """A pipeline step cannot run (missing upstream output, unknown step name, bad output)."""


class ParityError(RetrainError):
    """The exported ONNX graph disagrees with the native model on the evaluation set."""

    def __init__(self, max_abs_diff: float, tolerance: float, row: int) -> None:
        self.max_abs_diff = max_abs_diff
        super().__init__(
            f"ONNX parity check failed: max abs diff {max_abs_diff:.3g} > {tolerance:g} "
            f"(first at evaluation row {row})"
        )


class ScheduleError(RetrainError):
    """The cron schedule in the settings is not a valid expression."""


class ControlError(RetrainError):
    """A control run cannot be built: no production model, no recipe, or a bad seed."""


class AnalysisError(RetrainError):
    """Shadow analysis cannot run (unreachable broker, missing topic, bad label file, ...)."""


class ArchiveError(AnalysisError):
    """The topic archive cannot be written or read (missing folder, no partition assigned)."""


class NoEvidence(AnalysisError):
    """The records do not allow measuring the business metric; the message says why."""

    def __init__(self, ref: str, why: str) -> None:
        super().__init__(f"no shadow evidence for {ref}: {why}")
