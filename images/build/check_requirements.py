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
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

DOCS_TOOLING = re.compile(r"^(mkdocs|mkdocstrings)", re.IGNORECASE)
REGENERATE = "images/requirements/lock.sh <your Status-Page tree>"


def requirements(path: str) -> list[Requirement]:
    """The runtime requirements of a requirements file (comments, options and docs tooling dropped)."""
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
