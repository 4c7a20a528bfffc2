"""Give Django every database setting of the configuration, whatever the app's settings.py keeps.

Status-Page v2.5.1 builds ``DATABASES['default']`` from ``NAME``, ``USER``, ``PASSWORD``, ``HOST``,
``PORT`` and ``CONN_MAX_AGE`` of ``DATABASE`` only: the ``OPTIONS`` (``sslmode``, ``sslrootcert``,
``connect_timeout``) and ``CONN_HEALTH_CHECKS`` that ``statuspage_platform.configuration`` sets are
dropped. Without them ``DATABASE_SSLMODE=require`` would not reach libpq, and a connection kept for
``CONN_MAX_AGE`` would be reused unchecked after a database failover (one HTTP 500 per thread).
The entrypoint and the WSGI application call :func:`complete` right after ``django.setup()``, before
any connection opens; it changes the settings dict in place, which Django's connections read.
"""

from __future__ import annotations

import os

PLATFORM_CONFIGURATION = "statuspage_platform.configuration"


def complete() -> None:
    """Add the configuration's OPTIONS and CONN_HEALTH_CHECKS to DATABASES['default'] (app values win)."""
    if os.environ.get("STATUS_PAGE_CONFIGURATION") != PLATFORM_CONFIGURATION:
        return
    from django.conf import settings

    from statuspage_platform import configuration

    wanted = configuration.DATABASE
    default = settings.DATABASES["default"]
    options = default.setdefault("OPTIONS", {})
    for key, value in wanted.get("OPTIONS", {}).items():
        options.setdefault(key, value)
    if "CONN_HEALTH_CHECKS" in wanted and not default.get("CONN_HEALTH_CHECKS"):
        default["CONN_HEALTH_CHECKS"] = wanted["CONN_HEALTH_CHECKS"]
