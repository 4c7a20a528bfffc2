"""Import every module of the app and of statuspage_platform, then run ``manage.py check``.

    python import_check.py APP_DIR       (APP_DIR: the folder with manage.py)

Run at image build time with the runtime virtualenv and the build-time configuration
(STATUS_PAGE_CONFIGURATION=build_configuration), after the locked packages are installed. A module
that imports a package the lock lacks would otherwise fail only when a request, a job or a command
first reaches it in production; here the build stops with one line per failing module naming the
missing import. Nothing connects to a database or Redis.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

PLATFORM_PACKAGE = "statuspage_platform"
# statuspage_platform.configuration validates the environment when imported; these placeholders let
# it import here. They are set only in this process, never in the image.
PLACEHOLDER_ENV = {
    "SECRET_KEY": "import-check-placeholder-" + "x" * 40,
    "ALLOWED_HOSTS": "localhost",
    "SITE_URL": "http://localhost",
    "DATABASE_HOST": "localhost",
    "DATABASE_NAME": "build",
    "DATABASE_USER": "build",
    "DATABASE_PASSWORD": "build",
    "REDIS_HOST": "localhost",
}


def app_modules(app_dir: Path) -> list[str]:
    """Dotted names of every module in the app's packages (folders with __init__.py, recursively)."""
    names = []
    for init in sorted(app_dir.glob("*/__init__.py")):
        package = init.parent
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(app_dir).with_suffix("").parts
            # Only folders that are packages all the way down are importable by dotted name.
            if all((app_dir.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def platform_modules() -> list[str]:
    package = importlib.import_module(PLATFORM_PACKAGE)
    root = Path(package.__file__).parent
    return [PLATFORM_PACKAGE] + [f"{PLATFORM_PACKAGE}.{p.stem}" for p in sorted(root.glob("*.py"))
                                 if p.stem != "__init__"]


def describe(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"missing import {exc.name!r} ({type(exc).__name__}: {exc})"
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f"{type(exc).__name__}: {exc}" + (f" (at {where.filename}:{where.lineno})" if where else "")


def import_all(names) -> dict[str, BaseException]:  # type: ignore[no-untyped-def]
    """Import each module; the failures by module name."""
    errors: dict[str, BaseException] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the check fails
            errors[name] = exc
            sys.modules.pop(name, None)
    return errors


def not_installed(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "isn't in an application in INSTALLED_APPS" in str(exc)


def install_apps(packages: list[str]) -> None:
    """Add packages to the app registry as plain apps (a plugin's own AppConfig.ready() may need Redis)."""
    from django.apps import apps
    from django.conf import settings

    for package in packages:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]
    apps.set_installed_apps(list(settings.INSTALLED_APPS) + packages)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: import_check.py APP_DIR", file=sys.stderr)
        return 2
    app_dir = Path(argv[0]).resolve()
    os.chdir(app_dir)
    sys.path.insert(0, str(app_dir))
    for key, value in PLACEHOLDER_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    # Status-Page's queuing app registers its cron jobs in Redis when it starts, unless the command
    # is collectstatic (its build-time escape hatch); there is no Redis at build time, so the check
    # starts Django under that name too.
    sys.argv = ["manage.py", "collectstatic"]
    try:
        import django

        django.setup()
    except Exception as exc:  # noqa: BLE001 - reported as one line
        print(f"import_check: django.setup() failed: {describe(exc)}", file=sys.stderr)
        return 1
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    try:
        call_command("check")
    except SystemCheckError as exc:
        print(f"import_check: manage.py check failed: {exc}", file=sys.stderr)
        return 1
    modules = app_modules(app_dir) + platform_modules()
    errors = import_all(modules)
    # Apps in the tree that are enabled only at run time (Status-Page's bundled plugins, through
    # PLUGINS) cannot define models outside INSTALLED_APPS: install them, then import them again.
    extra = sorted({name.split(".")[0] for name, exc in errors.items() if not_installed(exc)})
    if extra:
        install_apps(extra)
        errors = import_all([m for m in modules if m in errors or m.split(".")[0] in extra])
        print(f"import_check: also checked the apps not in INSTALLED_APPS by default: {', '.join(extra)}")
    for name, exc in errors.items():
        print(f"import_check: importing {name} failed: {describe(exc)}", file=sys.stderr)
    if errors:
        return 1
    print(f"import_check: imported {len(modules)} modules; manage.py check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
