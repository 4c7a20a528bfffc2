#!/usr/bin/env bash
# The release layout actions/setup/fetch.sh reads, made the same way by release.yml and the tests:
#   package.sh archive BIN_DIR TARGET OUT_DIR   one BINARY-TARGET.tar.gz per statuspage-* binary in
#                                               BIN_DIR, the binary alone at the archive's root
#   package.sh sums OUT_DIR                     OUT_DIR/SHA256SUMS over every archive in OUT_DIR
set -euo pipefail
case ${1:-} in
  archive)
    bin_dir=${2:?BIN_DIR} target=${3:?TARGET} out=${4:?OUT_DIR}
    mkdir -p "$out"
    n=0
    for path in "$bin_dir"/statuspage-*; do
      [[ -f $path && -x $path && $path != *.* ]] || continue
      bin=$(basename "$path")
      tar --owner=0 --group=0 --numeric-owner -czf "$out/$bin-$target.tar.gz" -C "$bin_dir" "$bin"
      n=$((n + 1))
    done
    ((n)) || { echo "package.sh: no statuspage-* binaries in $bin_dir" >&2; exit 1; }
    ;;
  sums)
    out=${2:?OUT_DIR}
    (cd "$out" && sha256sum -- *.tar.gz >SHA256SUMS)
    ;;
  *) echo "usage: package.sh archive BIN_DIR TARGET OUT_DIR | sums OUT_DIR" >&2; exit 64 ;;
esac
