#!/usr/bin/env bash
# Stop everything tests/stack/up.sh started, by PID, and undo its host changes (/etc/hosts,
# certs.d). Data directories stay in $STACK_DIR; pass --purge to remove them too.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
bash "$here/github.sh" down || true
bash "$here/data.sh" down || true
bash "$here/cluster.sh" down || true
for component in registry aws docker; do
  bash "$here/$component.sh" down || true
done
stack_hosts_clear
stack_untrust_ca
rm -f "$STACK_ENV_FILE"
if [[ ${1:-} == --purge ]]; then
  rm -rf "$STACK_DIR"
  stack_log "purged $STACK_DIR"
fi
stack_log "stack down"
