#!/usr/bin/env bash
# Static judges over the whole repository, pinned by tests/tools/versions.env: rustfmt, clippy,
# ShellCheck on every shell script, the GitHub workflow and action linters (actionlint, zizmor).
# Each tool must report zero findings.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
status=0
check() {
  local name=$1
  shift
  if "$@"; then
    echo "[static] $name: clean" >&2
  else
    echo "[static] $name: FINDINGS (above)" >&2
    status=1
  fi
}

check "cargo fmt" cargo fmt --all --check
check "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings

mapfile -t scripts < <({ git ls-files '*.sh'; echo tests/run; echo bin/local-deploy; echo bin/bootstrap; echo .ci/run; } | sort -u)
check "shellcheck" shellcheck -x -S warning "${scripts[@]}"

mapfile -t workflows < <(find .github/workflows tests/actions/workflows -name '*.yml' -o -name '*.yaml' 2>/dev/null | sort)
mapfile -t action_files < <(find actions -name 'action.yml' 2>/dev/null | sort)
if ((${#workflows[@]})); then
  check "actionlint" actionlint -no-color "${workflows[@]}"
fi
if ((${#workflows[@]} + ${#action_files[@]})); then
  check "zizmor" zizmor --offline --persona=auditor --no-progress --quiet "${workflows[@]}" "${action_files[@]}"
fi
exit $status
