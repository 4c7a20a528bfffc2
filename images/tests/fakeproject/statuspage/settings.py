"""Test double of Status-Page's settings: reads STATUS_PAGE_CONFIGURATION like the real one."""

import importlib
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
configuration = importlib.import_module(os.getenv("STATUS_PAGE_CONFIGURATION", "statuspage.configuration"))

ALLOWED_HOSTS = configuration.ALLOWED_HOSTS
DATABASE = configuration.DATABASE
REDIS = configuration.REDIS
SECRET_KEY = configuration.SECRET_KEY
SITE_URL = configuration.SITE_URL
CSRF_TRUSTED_ORIGINS = getattr(configuration, "CSRF_TRUSTED_ORIGINS", [])
DEBUG = getattr(configuration, "DEBUG", False)
LOGGING = getattr(configuration, "LOGGING", {})
TIME_ZONE = getattr(configuration, "TIME_ZONE", "UTC")
RQ_DEFAULT_TIMEOUT = getattr(configuration, "RQ_DEFAULT_TIMEOUT", 300)

DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql"} | DATABASE}

_caching = REDIS["caching"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"{'rediss' if _caching['SSL'] else 'redis'}://{_caching['HOST']}:{_caching['PORT']}/"
                    f"{_caching['DATABASE']}",
        "OPTIONS": {"password": _caching["PASSWORD"] or None},
    }
}
_tasks = REDIS["tasks"]
RQ_PARAMS = {
    "HOST": _tasks["HOST"], "PORT": _tasks["PORT"], "DB": _tasks["DATABASE"], "PASSWORD": _tasks["PASSWORD"],
    "SSL": _tasks["SSL"], "DEFAULT_TIMEOUT": RQ_DEFAULT_TIMEOUT,
}
RQ_QUEUES = {"high": RQ_PARAMS, "default": RQ_PARAMS, "low": RQ_PARAMS}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_rq",
    "fakeapp",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "statuspage.urls"
WSGI_APPLICATION = "statuspage.wsgi.application"
USE_TZ = True
STATIC_ROOT = os.environ.get("FAKE_STATIC_ROOT", os.path.join(BASE_DIR, "static"))
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
