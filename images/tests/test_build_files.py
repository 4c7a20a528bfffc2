"""The Dockerfile and build helpers, checked without a Docker daemon: stage layout, pins, the
build context, the lock and the build-time checks (requirements, imports) on the fixture tree."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent
DOCKERFILE = (IMAGES / "Dockerfile").read_text()
BUILD = IMAGES / "build"
LOCK = IMAGES / "requirements" / "runtime.lock"
FIXTURE = IMAGES.parent / "tests" / "fixtures" / "statuspage-src"


def stages() -> dict[str, list[str]]:
    """Instructions per stage name (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I)
        if match:
            current = match.group(2)
            result[current] = [line]
        elif current:
            result[current].append(line)
    return result


def test_targets_differ_only_in_cmd() -> None:
    all_stages = stages()
    for target, cmd in (("web", '["web"]'), ("worker", '["worker"]'), ("scheduler", '["scheduler"]')):
        assert all_stages[target] == [f"FROM runtime AS {target}", f"CMD {cmd}"]
    assert list(all_stages)[-1] == "web"  # the default target


def test_base_image_is_a_build_arg_pinned_by_digest_with_tag_comment() -> None:
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert default and re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default.group(1))
    assert DOCKERFILE.index("ARG BASE_IMAGE=") < DOCKERFILE.index("FROM ")
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", DOCKERFILE, re.M)
    assert re.search(r"^# .*python:3\.11[\w.\-]*slim-bookworm", DOCKERFILE, re.M)


def test_source_arrives_as_a_stage_the_builder_copies() -> None:
    all_stages = stages()
    assert all_stages["statuspage-source"] == ["FROM scratch AS statuspage-source", "COPY source/ /"]
    assert "COPY --from=statuspage-source / /src" in all_stages["builder"]
    # Only the builder reads the source; the targets get the built tree from the builder.
    users = [name for name, lines in all_stages.items() if any("--from=statuspage-source" in x for x in lines)]
    assert users == ["builder"]
    # The docs tooling is installed and removed in the one step that builds the docs: no layer
    # (so no cache image and no second commit's pull) carries it.
    docs = [x for x in all_stages["builder"] if "mkdocs build" in x]
    assert len(docs) == 1 and "python -m venv /tmp/docs-venv" in docs[0] and "rm -rf /tmp/docs-venv" in docs[0]


def test_packages_install_exactly_the_lock_before_any_source_then_the_builder_checks() -> None:
    all_stages = stages()
    # The compilers and the locked virtualenv: a stage of its own that reads no source (so its cache
    # image is complete, and pushed, while the builder still runs), the builder's parent.
    packages = " ".join(all_stages["packages"])
    assert all_stages["packages"][0] == "FROM base AS packages"
    assert "pip install --no-cache-dir --require-hashes --no-deps -r /build/requirements/runtime.lock" in packages
    assert "statuspage-source" not in packages and "gcc=" in packages
    builder = " ".join(all_stages["builder"])
    assert all_stages["builder"][0] == "FROM packages AS builder"
    assert "check_requirements.py requirements.txt" in builder and "import_check.py" in builder
    assert builder.index("import_check.py") < builder.index("collectstatic")


def test_runtime_is_non_root_and_compiler_free() -> None:
    runtime = " ".join(stages()["runtime"])
    assert "USER 10001:10001" in runtime
    assert "--uid 10001" in runtime and "--gid 10001" in runtime
    assert "gcc" not in runtime and "libpq-dev" not in runtime
    assert 'ENTRYPOINT ["statuspage-entrypoint"]' in runtime and "HEALTHCHECK" in runtime
    for label in ("source", "revision", "version", "created"):
        assert f"org.opencontainers.image.{label}=" in runtime


def test_no_secret_or_debug_baked_in() -> None:
    runtime = " ".join(stages()["runtime"])
    assert "SECRET_KEY" not in runtime and "DEBUG" not in runtime
    assert "STATUS_PAGE_CONFIGURATION=statuspage_platform.configuration" in runtime
    assert "build_configuration" not in runtime


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics (last match wins; a match on a parent counts)."""
    result = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            result = not negate
    return result


def test_build_context_holds_everything_the_dockerfile_copies() -> None:
    patterns = [line.strip() for line in (IMAGES / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources = re.findall(r"^COPY\s+(?!--from)(\S+)\s", DOCKERFILE, re.M)
    assert sources
    for source in sources:
        if source == "source/":  # the Status-Page tree, put there by whoever builds
            continue
        files = [p for p in (IMAGES / source).rglob("*") if p.is_file()] if (IMAGES / source).is_dir() \
            else [IMAGES / source]
        sent = [f for f in files if not ignored(str(f.relative_to(IMAGES)), patterns)]
        assert sent, f"COPY {source}: nothing of it is in the build context"
    assert ignored("tests/conftest.py", patterns) and ignored("README.md", patterns)
    assert not ignored("platform/statuspage_platform/entrypoint.py", patterns)
    assert not ignored("source/statuspage/manage.py", patterns)
    assert not ignored("source/mkdocs.yml", patterns)
    assert ignored("source/.git/config", patterns)
    assert ignored("source/statuspage/x/__pycache__/y.cpython-311.pyc", patterns)


def locked() -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", LOCK.read_text(), re.M)}


def test_lock_pins_the_platform_and_extra_requirements_with_hashes() -> None:
    lock = locked()
    for name in ("platform.txt", "runtime-extra.txt"):
        for line in (IMAGES / "requirements" / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("==")
                assert lock.get(package.lower()) == version, f"{name}: {line} is not what runtime.lock pins"
    assert "rq" in lock and "redis" in lock
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    assert all("--hash=sha256:" in entry for entry in entries if entry.strip() and not entry.startswith("#"))
    assert not any(name.startswith(("mkdocs", "mkdocstrings")) for name in lock)


def test_the_suite_runs_the_locked_versions() -> None:
    from importlib import metadata

    for package, version in locked().items():
        assert metadata.version(package) == version, f"{package}: the test venv is not runtime.lock"


def check_requirements(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD / "check_requirements.py"), str(path)],
                          capture_output=True, text=True, timeout=60)


def test_fixture_requirements_are_satisfied_by_the_lock() -> None:
    result = check_requirements(FIXTURE / "requirements.txt")
    assert result.returncode == 0, result.stderr


def test_changed_requirements_fail_with_one_line_each(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Django==5.1.3  # newer than the lock\nmkdocs==0.1\nnot-locked-package>=1\n")
    result = check_requirements(requirements)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert "Django==5.1.3" in lines[0] and "Django==5.1.2" in lines[0] and "lock.sh" in lines[0]
    assert "not-locked-package" in lines[1] and "lock.sh" in lines[1]


def import_check(project: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STATUS_PAGE_CONFIGURATION="build_configuration",
               PYTHONPATH=os.pathsep.join([str(BUILD), str(IMAGES / "platform")]))
    for key in [k for k in env if k.startswith(("DATABASE_", "REDIS_", "SECRET_KEY", "SITE_URL", "ALLOWED_"))]:
        del env[key]
    return subprocess.run([sys.executable, str(BUILD / "import_check.py"), str(project)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_check_passes_on_the_fixture(tmp_path: Path) -> None:
    project = tmp_path / "statuspage"
    shutil.copytree(FIXTURE / "statuspage", project)
    result = import_check(project)
    assert result.returncode == 0, result.stderr
    assert "manage.py check passed" in result.stdout


def test_import_check_names_the_module_and_the_missing_import(tmp_path: Path) -> None:
    project = tmp_path / "statuspage"
    shutil.copytree(FIXTURE / "statuspage", project)
    (project / "probes" / "feeds.py").write_text("import feedparser_not_in_the_lock\n")
    result = import_check(project)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "import_check: importing probes.feeds failed: missing import 'feedparser_not_in_the_lock'")


def test_every_apt_install_leaves_no_package_caches_in_its_layer() -> None:
    # A base without the official image's docker-clean hook (the stand-in) leaves apt's lists, its
    # *.bin caches and the downloaded .deb files in the layer: 128 MB in `packages`, pushed by the
    # cache export and pulled by the next commit. Every step that installs must remove them.
    installs = [(name, x) for name, lines in stages().items() for x in lines if "apt-get" in x and "install" in x]
    assert {name for name, _ in installs} == {"packages", "runtime"}
    for name, step in installs:
        for cache in ("/var/lib/apt/lists/*", "/var/cache/apt/*.bin", "/var/cache/apt/archives/*.deb"):
            assert cache in step.split("install", 1)[1], f"{name}: {cache} not removed"
