"""Shadowline's offline loop: data, pipeline steps, training, ONNX export, evaluation, worker.

Importing the package is cheap; the heavy modules (pandas, LightGBM, onnx) load when used.
Public entry points:

* :class:`retrain.runner.Runner` -- one run of the pipeline, recorded in Redis;
* :class:`retrain.worker.Worker` -- the cron-scheduled worker (``drain`` for tests);
* :class:`retrain.rollout.Rollout` -- the worker's roll-out of approved versions;
* :class:`retrain.sources.DataSource` (synthetic or a folder of files) and
  :class:`retrain.training.Trainer` (LightGBM by default) -- the pluggable parts;
* :func:`retrain.evidence.comparison.analyze` -- shadow analysis: a challenger against production on
  scored, labeled transactions, as ``ShadowEvidence`` for the approval policy;
* :class:`retrain.settings.RetrainSettings` -- every setting;
* :class:`retrain.errors.RetrainError` -- the base of every error raised here.
"""

from retrain.errors import (
    AnalysisError,
    DataError,
    NoEvidence,
    ParityError,
    RetrainError,
    ScheduleError,
    StepError,
)

__all__ = [
    "AnalysisError",
    "DataError",
    "NoEvidence",
    "ParityError",
    "RetrainError",
    "ScheduleError",
    "StepError",
]
