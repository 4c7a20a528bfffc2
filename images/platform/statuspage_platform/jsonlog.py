"""JSON-lines logging: one object per line on stdout (ts, level, logger, msg, and extras)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# gunicorn access-log atoms -> field names
_ACCESS_FIELDS = {"h": "remote", "m": "method", "U": "path", "q": "query", "s": "status", "B": "bytes",
                  "f": "referer", "a": "user_agent"}


def _access_fields(atoms: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {name: atoms.get(atom) for atom, name in _ACCESS_FIELDS.items()}
    for key in ("status", "bytes"):
        try:
            fields[key] = int(fields[key])
        except (TypeError, ValueError):
            pass
    try:
        fields["duration_ms"] = round(int(atoms.get("D", 0)) / 1000, 3)
    except (TypeError, ValueError):
        pass
    return fields


def _is_access(record: logging.LogRecord) -> bool:
    return record.name == "gunicorn.access" and isinstance(record.args, dict)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object; extra attributes become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if _is_access(record):
            fields = _access_fields(record.args)  # type: ignore[arg-type]
            entry["msg"] = f"{fields['method']} {fields['path']} {fields['status']}"
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class DropProbes(logging.Filter):
    """Keep kubelet probes (/-/healthz, /-/readyz) out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_access(record):
            path = str(record.args.get("U", ""))  # type: ignore[union-attr]
            return not path.startswith("/-/")
        return True


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig that sends everything (Django, RQ, gunicorn, ours) to stdout as JSON."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout",
               "filters": ["drop_probes"]}
    quiet = {"level": level, "handlers": ["stdout"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "statuspage_platform.jsonlog.JsonFormatter"}},
        "filters": {"drop_probes": {"()": "statuspage_platform.jsonlog.DropProbes"}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "django": quiet,
            "rq.worker": quiet,
            "rq_scheduler": quiet,
            "rq_scheduler.scheduler": quiet,
            "gunicorn.error": quiet,
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            "statuspage_platform": quiet,
            # Python warnings (e.g. rq_scheduler's FutureWarning), once capture_warnings() routes them here.
            "py.warnings": quiet,
        },
    }


def capture_warnings() -> None:
    """Send Python warnings through logging as JSON lines instead of plain text on stderr.

    Until a logging configuration (Django's LOGGING, gunicorn's logconfig_dict) takes over the
    ``py.warnings`` logger, a JSON handler of its own writes them to stdout.
    """
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False


def log(level: int, msg: str, logger: str = "statuspage_platform", **fields: Any) -> None:
    """Write one JSON line to stdout without needing logging to be configured."""
    record = logging.makeLogRecord({"name": logger, "levelno": level, "levelname": logging.getLevelName(level),
                                    "msg": msg, **fields})
    sys.stdout.write(JsonFormatter().format(record) + "\n")
    sys.stdout.flush()
