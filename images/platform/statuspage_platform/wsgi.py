"""The WSGI application gunicorn serves: Status-Page wrapped by the platform layer.

Before Django sees a request, :class:`PlatformApp` answers

* ``/-/healthz``: 200 ``ok``, no database or Redis touched (liveness);
* ``/-/readyz``: 200 or 503 from :func:`statuspage_platform.health.readiness`;
* ``/static/…``: files from ``STATIC_ROOT`` through WhiteNoise (precompressed variants, far-future
  ``Cache-Control`` for versioned ``?v=`` URLs and content-hashed names);

and it records ``statuspage_http_requests_total`` and the request duration histogram for every request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from whitenoise import WhiteNoise

from statuspage_platform import metrics
from statuspage_platform.probe_server import HEALTHZ, READYZ, readiness_body

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
ReadinessFn = Callable[[], "tuple[bool, dict[str, dict[str, object]]]"]

IMMUTABLE = "public, max-age=31536000, immutable"
# Top-level path segments kept as their own "route" label; everything else is "other" (bounded labels).
ROUTES = frozenset({"api", "dashboard", "incidents", "maintenances", "subscribers", "plugins", "admin",
                    "static", "media", "login", "logout", "user", "users", "django-rq", "-"})
_HASHED = re.compile(r"\.[0-9a-f]{8,}\.")
_VERSIONED_QUERY = re.compile(r"(^|&)v=[^&]+")


def route_label(path: str) -> str:
    """A bounded label for a request path: ``/``, ``/<known segment>/`` or ``other``."""
    if path in ("", "/"):
        return "/"
    if path in (HEALTHZ, READYZ):
        return path
    segment = path.lstrip("/").split("/", 1)[0]
    return f"/{segment}/" if segment in ROUTES else "other"


def is_hashed_name(path: str, url: str) -> bool:
    """WhiteNoise immutable test: a content hash of 8+ hex digits in the file name."""
    return bool(_HASHED.search(url.rsplit("/", 1)[-1]))


class _Timed:
    """Wrap a response iterable so the duration covers the last byte, recorded once on close()."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class PlatformApp:
    """Health, readiness, static files and metrics in front of a WSGI application."""

    def __init__(self, app: WSGIApp, static_root: str | None, static_prefix: str,
                 readiness: ReadinessFn, static_max_age: int = 3600) -> None:
        self.app = app
        self.readiness = readiness
        self.static_prefix = "/" + static_prefix.strip("/") + "/"
        self.static: WhiteNoise | None = None
        if static_root:
            self.static = WhiteNoise(app, root=static_root, prefix=self.static_prefix,
                                     max_age=static_max_age, index_file=True,
                                     immutable_file_test=is_hashed_name)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start = time.perf_counter()
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        status_holder: list[int] = [500]

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder[0] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        def done() -> None:
            metrics.observe_request(method, route_label(path), status_holder[0], time.perf_counter() - start)

        try:
            body = self._dispatch(path, environ, recording_start_response)
        except BaseException:
            done()
            raise
        return _Timed(body, done)

    def _dispatch(self, path: str, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if path == HEALTHZ:
            return _respond(start_response, "200 OK", b"ok\n", "text/plain; charset=utf-8")
        if path == READYZ:
            ready, checks = self.readiness()
            status = "200 OK" if ready else "503 Service Unavailable"
            return _respond(start_response, status, readiness_body(ready, checks), "application/json")
        if self.static is not None and path.startswith(self.static_prefix):
            # WhiteNoise serves what STATIC_ROOT has and hands anything else to the app (a 404).
            versioned = bool(_VERSIONED_QUERY.search(environ.get("QUERY_STRING", "")))
            return self.static(environ, _immutable(start_response) if versioned else start_response)
        return self.app(environ, start_response)


def _immutable(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """A start_response that marks successful static answers as cacheable forever."""

    def wrapped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("200") or status.startswith("304"):
            headers = [(k, v) for k, v in headers if k.lower() != "cache-control"]
            headers.append(("Cache-Control", IMMUTABLE))
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return wrapped


def _respond(start_response: Callable[..., Any], status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


def build_application() -> PlatformApp:
    """Wrap Status-Page's own WSGI application (imported lazily: it needs Django settings)."""
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from statuspage_platform import database
    from statuspage_platform.config import load
    from statuspage_platform.health import readiness

    config = load()
    django_app = get_wsgi_application()
    database.complete()
    static_url = getattr(settings, "STATIC_URL", "/static/")
    return PlatformApp(django_app, getattr(settings, "STATIC_ROOT", None), static_url,
                       lambda: readiness(config))


def __getattr__(name: str) -> Any:
    """``statuspage_platform.wsgi:application`` is built on first access (after settings exist)."""
    if name == "application":
        app = build_application()
        globals()["application"] = app
        return app
    raise AttributeError(name)
