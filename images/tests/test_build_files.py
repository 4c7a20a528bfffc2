"""The Dockerfile and build helpers, checked without a Docker daemon: stage layout, pins, the
build context, and the source download's checksum handling."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parent.parent
DOCKERFILE = (IMAGES / "Dockerfile").read_text()
PREPARE = IMAGES / "build" / "prepare_source.py"


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


def test_base_image_pinned_by_digest_with_tag_comment() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    external = [f for f in froms if f not in stages()]
    assert external and all(re.search(r"@sha256:[0-9a-f]{64}$", f) for f in external)
    assert re.search(r"^# python:3\.11[\w.\-]*slim-bookworm", DOCKERFILE, re.M)


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
        files = [p for p in (IMAGES / source).rglob("*") if p.is_file()] if (IMAGES / source).is_dir() \
            else [IMAGES / source]
        sent = [f for f in files if not ignored(str(f.relative_to(IMAGES)), patterns)]
        assert sent, f"COPY {source}: nothing of it is in the build context"
    assert ignored("tests/conftest.py", patterns) and ignored("README.md", patterns)
    assert not ignored("platform/statuspage_platform/entrypoint.py", patterns)


def test_platform_requirements_match_test_pins() -> None:
    def pins(path: Path) -> dict[str, str]:
        return dict(line.split("==") for line in path.read_text().splitlines()
                    if "==" in line and not line.startswith("#"))

    platform = pins(IMAGES / "requirements" / "platform.txt")
    tests = pins(IMAGES / "tests" / "requirements.txt")
    assert platform and all(tests[name] == version for name, version in platform.items())


def run_prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREPARE), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sha", ["", "abc", "Z" * 64])
def test_release_source_needs_a_valid_checksum(sha: str, tmp_path: Path) -> None:
    result = run_prepare("release", "v2.5.1", sha, str(tmp_path / "none"), str(tmp_path / "src"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "STATUSPAGE_SHA256" in result.stderr
    assert not (tmp_path / "src").exists()


def test_release_source_rejects_a_wrong_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(PREPARE.parent))
    import prepare_source

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        data = b"Django==5.1.15\n"
        info = tarfile.TarInfo("status-page-2.5.1/requirements.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "v2.5.1.tar.gz"
    archive.write_bytes(payload.getvalue())
    monkeypatch.setattr(prepare_source, "URL", archive.as_uri().replace("v2.5.1", "{version}"))
    with pytest.raises(SystemExit):
        prepare_source.from_release("v2.5.1", "0" * 64, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
    prepare_source.from_release("v2.5.1", hashlib.sha256(payload.getvalue()).hexdigest(), str(tmp_path / "good"))
    assert (tmp_path / "good" / "requirements.txt").read_bytes() == data  # top directory stripped


def test_local_source_must_look_like_status_page(tmp_path: Path) -> None:
    empty = tmp_path / "local"
    empty.mkdir()
    (empty / ".keep").touch()
    result = run_prepare("local", "v2.5.1", "", str(empty), str(tmp_path / "src"))
    assert result.returncode == 1 and "images/local-src/" in result.stderr
    (empty / "statuspage").mkdir()
    (empty / "statuspage" / "manage.py").write_text("")
    (empty / "requirements.txt").write_text("Django==5.1.15\n")
    result = run_prepare("local", "v2.5.1", "", str(empty), str(tmp_path / "src"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "src" / "statuspage" / "manage.py").exists() and not (tmp_path / "src" / ".keep").exists()


def test_unknown_source_kind(tmp_path: Path) -> None:
    result = run_prepare("git", "v2.5.1", "", str(tmp_path), str(tmp_path / "src"))
    assert result.returncode == 1 and "release or local" in result.stderr
