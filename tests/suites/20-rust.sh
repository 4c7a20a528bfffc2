#!/usr/bin/env bash
# Every Rust test: unit tests of each crate, then the integration tests in tests/integration
# against the running stack (the runner sourced its env file). The binaries are built first so
# tests can run them as a user would.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
echo "[20-rust] stack engine: $(docker version --format 'Docker Engine {{.Server.Version}}, API {{.Server.APIVersion}}') at $DOCKER_HOST" >&2
cargo build --workspace --bins --quiet
cargo test --workspace --no-fail-fast
