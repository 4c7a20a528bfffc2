"""Placeholder configuration used only at image build time, for ``collectstatic``.

It lives in the builder stage and is never copied into the runtime images, which use the
environment-driven ``statuspage_platform.configuration``. Nothing here connects anywhere:
collectstatic needs the five required settings to exist, not to work.
"""

ALLOWED_HOSTS = ["localhost"]
DATABASE = {"NAME": "build", "USER": "build", "PASSWORD": "", "HOST": "localhost", "PORT": 5432}
REDIS = {
    "tasks": {"HOST": "localhost", "PORT": 6379, "PASSWORD": "", "DATABASE": 0, "SSL": False},
    "caching": {"HOST": "localhost", "PORT": 6379, "PASSWORD": "", "DATABASE": 1, "SSL": False},
}
SECRET_KEY = "build-stage-placeholder-used-only-for-collectstatic-never-shipped-0123456789"
SITE_URL = "http://localhost"
