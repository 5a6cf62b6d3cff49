"""Every error the scorer raises derives from :class:`ServiceError`.

Routes never raise ``HTTPException``: the domain code raises these, and one exception handler in
:mod:`service.app` turns each into its status code and a JSON body.  Messages are built from the
arguments so they name what is wrong; tests assert the exact text.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_PROBLEMS = 50  # problems listed in one 422 answer


class ServiceError(Exception):
    """Base class of the scorer's errors; ``status`` is the HTTP status it maps to."""

    status = 500


class InvalidRequest(ServiceError):
    """The request body is not a valid scoring request; ``problems`` names each bad field."""

    status = 422

    def __init__(self, problems: Sequence[str]) -> None:
        # A body of thousands of bad fields must not get a response many times its size.
        shown = list(problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
        self.problems = shown
        super().__init__("invalid request: " + "; ".join(self.problems))


class PayloadTooLarge(ServiceError):
    """The body is larger than ``max_body_bytes`` or the batch longer than ``max_batch``."""

    status = 413

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(f"{what} exceeds the limit of {limit}")


class NoProductionModel(ServiceError):
    """No production model is loaded, so nothing can be scored yet."""

    status = 503

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no production model is loaded for {name!r}: promote a version "
            "(shadowline models promote) or wait until the scorer has loaded it"
        )


class ModelLoadError(ServiceError):
    """A model version could not be loaded, checked or warmed up; the old one keeps serving."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"cannot load model {ref}: {reason}")


class Unauthorized(ServiceError):
    """A route behind a token (the admin API, the labels intake) was called without one."""

    status = 401

    def __init__(
        self, what: str = "the admin API", setting: str = "SHADOWLINE_ADMIN_TOKEN"
    ) -> None:
        super().__init__(f"{what} needs 'Authorization: Bearer <{setting}>'")


class Forbidden(ServiceError):
    """A route behind a token was called with a wrong one."""

    status = 403

    def __init__(self, which: str = "admin") -> None:
        super().__init__(f"the bearer token is not the {which} token")


class LabelsConflict(ServiceError):
    """Labels of the batch clash with labels being written or already written (each named
    in ``problems``); nothing of the batch was written."""

    status = 409

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} label(s) clash with labels received before; "
            "nothing of this batch was written"
        )


class LabelsOff(ServiceError):
    """This scorer takes no labels: the labels endpoint has no token configured."""

    status = 404

    def __init__(self) -> None:
        super().__init__(
            "this scorer takes no labels: POST /v1/labels is off until SHADOWLINE_LABELS_TOKEN "
            "is set"
        )


class LabelsUnavailable(ServiceError):
    """Labels cannot be taken now (intake off, broker or Redis unreachable); nothing of the
    batch was written, so the sender may send it again."""

    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(f"labels cannot be taken now: {reason}")


class ModelCacheError(ServiceError):
    """The local last-known-good copy cannot be written or read back intact."""

    def __init__(self, root: object, reason: str) -> None:
        self.reason = reason
        super().__init__(f"model cache {root}: {reason}")
