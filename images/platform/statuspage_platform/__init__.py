"""Platform plugin for the Status-Page container images.

It gives Status-Page what a container platform needs without patching the app: an environment-driven
configuration module (:mod:`statuspage_platform.configuration`), liveness, readiness and Prometheus
metrics (:mod:`statuspage_platform.wsgi`, :mod:`statuspage_platform.probe_server`), efficient static
files, JSON logs and one entrypoint for every role (:mod:`statuspage_platform.entrypoint`).

It works at the WSGI and process level rather than as a Status-Page ``PLUGINS`` entry, because plugin
middleware runs after the session, auth, OTP and dynamic-config middlewares, which touch the database
and Redis: liveness and static files must answer before them.
"""

__version__ = "1.0.0"
