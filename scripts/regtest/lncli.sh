#!/usr/bin/env bash
# Runs lncli against one node of the regtest network: lncli.sh <alice|bob|carol> <lncli args…>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_file="${HIGHWIRE_REGTEST_DIR:-$here/../../.regtest}/env.json"
if [ $# -lt 1 ]; then
  echo "usage: $0 <alice|bob|carol> <lncli args…>" >&2
  exit 2
fi
[ -f "$env_file" ] || { echo "no $env_file: run 'npm run regtest -- up'" >&2; exit 1; }
# Prints lncli's path and connection flags for the node, one per line.
conn="$(node -e '
  const env = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  const node = env.nodes.find((n) => n.name === process.argv[2])
  if (!node) { console.error("unknown node " + process.argv[2]); process.exit(2) }
  console.log([env.binaries.lncli, "--rpcserver=" + node.host, "--tlscertpath=" + node.tlsCert, "--macaroonpath=" + node.macaroon].join("\n"))
' "$env_file" "$1")"
mapfile -t args <<< "$conn"
shift
exec "${args[@]}" "$@"
