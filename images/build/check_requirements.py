"""Check that a Status-Page requirements.txt is satisfied by the installed (locked) packages.

    python check_requirements.py SOURCE_REQUIREMENTS

Run with the runtime virtualenv's interpreter after ``pip install --require-hashes --no-deps -r
runtime.lock``. The docs tooling (mkdocs*, mkdocstrings*) is skipped: it is built in a throwaway
virtualenv and never shipped. Every requirement that the lock does not satisfy is reported on one
line with the wanted and the locked version and the command that regenerates the lock; the exit
code is then 1. This is what a fork with changed requirements meets.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

DOCS_TOOLING = re.compile(r"^(mkdocs|mkdocstrings)", re.IGNORECASE)
# Listed by requirements.txt, imported by nothing at run time, so not installed (runtime-excluded.txt).
EXCLUDED_FILE = Path(__file__).with_name("runtime-excluded.txt")
REGENERATE = "images/requirements/lock.sh <your Status-Page tree>"


def excluded_names() -> set[str]:
    """Canonical names runtime-excluded.txt lists (empty when the file is not beside this script)."""
    if not EXCLUDED_FILE.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in EXCLUDED_FILE.read_text(encoding="utf-8").splitlines())
    return {canonical(line) for line in lines if line}


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: str) -> list[Requirement]:
    """The runtime requirements of a requirements file (comments, options, docs tooling and the
    packages runtime-excluded.txt names dropped)."""
    excluded = excluded_names()
    found = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")) or DOCS_TOOLING.match(line):
                continue
            try:
                requirement = Requirement(line)
            except InvalidRequirement as exc:
                raise SystemExit(f"check_requirements: {path}: cannot parse {line!r}: {exc}") from None
            if canonical(requirement.name) in excluded:
                continue
            if requirement.marker is None or requirement.marker.evaluate():
                found.append(requirement)
    return found


def problems(wanted: list[Requirement]) -> list[str]:
    """One line per requirement the installed set does not satisfy."""
    lines = []
    for requirement in wanted:
        try:
            locked = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            lines.append(f"requirements.txt wants {requirement} but runtime.lock has no {requirement.name}; "
                         f"regenerate the lock: {REGENERATE}")
            continue
        if requirement.specifier and not requirement.specifier.contains(locked, prereleases=True):
            lines.append(f"requirements.txt wants {requirement} but runtime.lock has "
                         f"{requirement.name}=={locked}; regenerate the lock: {REGENERATE}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_requirements.py SOURCE_REQUIREMENTS", file=sys.stderr)
        return 2
    wanted = requirements(argv[0])
    lines = problems(wanted)
    for line in lines:
        print(f"check_requirements: {line}", file=sys.stderr)
    if not lines:
        print(f"check_requirements: all {len(wanted)} runtime requirements of {argv[0]} are in runtime.lock")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
