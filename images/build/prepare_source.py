"""Put the Status-Page source tree in DEST (build stage only).

    python prepare_source.py SOURCE VERSION SHA256 LOCAL_DIR DEST

SOURCE "release" downloads the VERSION tarball, verifies SHA256 and unpacks it; SOURCE "local" copies
a fork's tree from LOCAL_DIR (images/local-src/ in the build context).

Fails with one clear line when the checksum is missing, malformed or wrong, or the tree is empty.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import pathlib
from pathlib import PurePosixPath

URL = "https://github.com/status-page/status-page/archive/refs/tags/{version}.tar.gz"


def die(message: str) -> None:
    """Stop the build with one line."""
    print(f"prepare_source: {message}", file=sys.stderr)
    raise SystemExit(1)


def from_local(local: str, dest: str) -> None:
    """Copy a fork's source tree; it must look like Status-Page (requirements.txt, statuspage/manage.py)."""
    root = PurePosixPath(local)
    if not (pathlib.Path(root / "requirements.txt").is_file()
            and pathlib.Path(root / "statuspage" / "manage.py").is_file()):
        die(f"STATUSPAGE_SOURCE=local but images/local-src/ holds no Status-Page tree "
            "(requirements.txt and statuspage/manage.py expected)")
    shutil.copytree(local, dest, ignore=shutil.ignore_patterns(".git", ".keep", "__pycache__"))
    print(f"prepare_source: copied the local source tree to {dest}")


def from_release(version: str, expected: str, dest: str) -> None:
    """Fetch, verify and unpack VERSION into DEST (the archive's top directory is stripped)."""
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        die(f"STATUSPAGE_VERSION must look like v2.5.1, got {version!r}")
    if not expected:
        die("the STATUSPAGE_SHA256 build arg is required: the SHA-256 of "
            f"{URL.format(version=version)} (see images/README.md)")
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        die(f"STATUSPAGE_SHA256 must be 64 lowercase hex digits, got {expected!r}")
    url = URL.format(version=version)
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as archive:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - fixed https URL
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                archive.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            die(f"SHA-256 mismatch for {url}: expected {expected}, got {actual}")
        archive.seek(0)
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            members = []
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if len(parts) < 2:
                    continue
                member.name = str(PurePosixPath(*parts[1:]))
                members.append(member)
            tar.extractall(dest, members=members, filter="data")
    print(f"prepare_source: {url} verified (sha256 {actual}) and unpacked to {dest}")


def main(argv: list[str]) -> None:
    """Dispatch on the source kind."""
    if len(argv) != 5:
        die("usage: prepare_source.py SOURCE VERSION SHA256 LOCAL_DIR DEST")
    source, version, sha256, local, dest = argv
    if source == "release":
        from_release(version, sha256, dest)
    elif source == "local":
        from_local(local, dest)
    else:
        die(f"STATUSPAGE_SOURCE must be release or local, got {source!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
