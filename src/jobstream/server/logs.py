"""Logs an operator can use: one setup for every record, in text or JSON, secrets redacted.

``jobstream serve`` hands ``log_config(format, level)`` to uvicorn, so uvicorn's access and
error logs, jobstream's own and any library's go through one handler (stderr) and one formatter:

- ``text``: ``2026-11-23T10:00:00.123Z INFO    jobstream.jobs job finished  job_id=… status=…``
- ``json`` (``JsonFormatter``, python-json-logger on orjson): one object per line with
  ``timestamp``, ``level``, ``logger``, ``message`` and the record's structured fields (the
  ``extra=`` of the call; for an access line ``client``, ``method``, ``path``,
  ``http_version``, ``status``).

Redaction: a query parameter whose name, URL-decoded and in any case, is ``token``, ``ticket``
or ``signature`` has its value replaced by ``[redacted]`` wherever it appears: the message, every
field, a traceback. Starlette decodes ``?%74oken=`` to ``token`` and authenticates with it, so
the name is compared decoded. Both formatters redact their whole output, and
``install_log_redaction`` adds the same to the records of the ``uvicorn`` and ``jobstream``
loggers for an application that embeds jobstream under its own logging set-up.

``JobLog`` writes the job lifecycle lines (logger ``jobstream.jobs``): submitted, started (with
the queue wait), progress at most every ``progress_every`` seconds per job, finished (status,
duration), recovered.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from jobstream.models import Event, EventType, Job, JobStatus
from jobstream.worker.observer import JobObserver, step_label

LogFormat = Literal["text", "json"]

SECRET_PARAMETERS = frozenset({"token", "ticket", "signature"})
REDACTED = "[redacted]"

# A query parameter: its separator, its name and its value, as they appear in a URL.
_PARAMETER = re.compile(r"(?P<head>[?&](?P<name>[^=&?#\s\"'<>]+)=)(?P<value>[^&#\s\"'<>]*)")

_NOT_FIELDS = frozenset({*RESERVED_ATTRS, "color_message", "message", "asctime"})
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def redact(text: str) -> str:
    """``text`` with the value of every ``token``/``ticket``/``signature`` query parameter
    hidden, the name compared URL-decoded and in any case (``?%74oken=``, ``?TOKEN=``)."""
    if "=" not in text:
        return text
    return _PARAMETER.sub(_hide, text)


def _hide(match: re.Match[str]) -> str:
    if not match["value"] or unquote_plus(match["name"]).strip().lower() not in SECRET_PARAMETERS:
        return match[0]
    return match["head"] + REDACTED


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def _timestamp(created: float) -> str:
    """``2026-11-23T10:00:00.123Z``: UTC, milliseconds, as on the API."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: its ``extra=``, or an access line's parts."""
    fields = {k: v for k, v in record.__dict__.items() if k not in _NOT_FIELDS}
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        fields.update(zip(_ACCESS_FIELDS, args, strict=True))
    return fields


class TextFormatter(logging.Formatter):
    """``timestamp level logger message  key=value …``, then any traceback; redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record.created)} {record.levelname:<7} {record.name} "
        line += record.getMessage()
        if record.name != "uvicorn.access":  # its fields are its message
            fields = record_fields(record)
            if fields:
                line += "  " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


def _text(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or any(c.isspace() for c in text)) else text


class JsonFormatter(OrjsonFormatter):
    """One JSON object per record and line: ``timestamp``, ``level``, ``logger``, ``message``,
    then the structured fields (a traceback in ``exc_info``); every string redacted."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_NOT_FIELDS),
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = _timestamp(record.created)
        super().add_fields(log_data, record, message_dict)
        if record.name == "uvicorn.access":
            log_data.update((k, v) for k, v in record_fields(record).items() if k in _ACCESS_FIELDS)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = _redact_value(log_data)
        return redacted


def log_config(log_format: LogFormat, level: int) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's ``log_config``: every record (uvicorn's,
    jobstream's, any library's warnings) through one stderr handler in ``log_format``."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    ours = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"jobstream": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "jobstream",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"uvicorn": ours, "uvicorn.access": ours, "jobstream": ours},
        "root": {"handlers": ["stderr"], "level": max(level, logging.WARNING)},
    }


class RedactSecrets(logging.Filter):
    """Redacts a record's message and string arguments (for handlers jobstream did not set up:
    an application that embeds it under its own logging configuration)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "jobstream"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


# -- job lifecycle lines ---------------------------------------------------------------------

jobs_log = logging.getLogger("jobstream.jobs")


def _job_fields(job: Job, event: str) -> dict[str, Any]:
    return {"event": event, "job_id": job.id, "kind": job.kind, "owner": job.owner}


class JobLog(JobObserver):
    """One line per step of a job's life; progress at most every ``progress_every`` seconds
    per job (and only when it moved)."""

    MAX_TRACKED = 10_000

    def __init__(self, progress_every: float = 5.0) -> None:
        self.progress_every = progress_every
        self._last: dict[str, tuple[float, float]] = {}  # job id -> (when, progress) logged

    def queued(self, job: Job) -> None:
        jobs_log.info("job submitted", extra=_job_fields(job, "job.submitted"))

    def started(self, job: Job, waited_seconds: float) -> None:
        if len(self._last) >= self.MAX_TRACKED:  # jobs whose end this process never saw
            self._last.clear()
        self._last[job.id] = (time.monotonic(), job.progress)
        jobs_log.info(
            "job started",
            extra={
                **_job_fields(job, "job.started"),
                "waited_seconds": round(waited_seconds, 3),
                "attempt": job.attempts,
            },
        )

    def progressed(self, job: Job) -> None:
        last = self._last.get(job.id)
        now = time.monotonic()
        if last is None or now - last[0] < self.progress_every or job.progress == last[1]:
            return
        self._last[job.id] = (now, job.progress)
        jobs_log.info(
            "job progress",
            extra={
                **_job_fields(job, "job.progress"),
                "progress": round(job.progress, 1),
                "step": step_label(job.current_step, job.step_name),
                "current_step": job.current_step,
                "total_steps": job.total_steps,
                "state": job.state,
            },
        )

    def finished(self, job: Job, event: Event, seconds: float) -> None:
        self._last.pop(job.id, None)
        fields = {
            **_job_fields(job, "job.finished"),
            "status": job.status.value,
            "duration_seconds": round(seconds, 3),
        }
        if job.status is JobStatus.FAILED:
            fields["error"] = job.error or event.data.get("message")
        level = logging.WARNING if job.status is JobStatus.FAILED else logging.INFO
        jobs_log.log(level, "job finished", extra=fields)

    def recovered(self, job: Job, event: Event) -> None:
        self._last.pop(job.id, None)
        requeued = event.type is EventType.STATUS_CHANGE
        jobs_log.warning(
            "job recovered",
            extra={
                **_job_fields(job, "job.recovered"),
                "outcome": "requeued" if requeued else "failed",
                "reason": event.data.get("reason") or event.data.get("message"),
            },
        )


__all__ = [
    "REDACTED",
    "SECRET_PARAMETERS",
    "JobLog",
    "JsonFormatter",
    "LogFormat",
    "RedactSecrets",
    "TextFormatter",
    "install_log_redaction",
    "log_config",
    "record_fields",
    "redact",
]
