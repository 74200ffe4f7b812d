#!/usr/bin/env bash
# Runs one real-client compatibility script against a running server:
#   tests/clients/run.sh psycopg|sqlalchemy|jdbc|node
# The connection comes from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (passed through).
# The client prints `RESULT <name>=<value>` lines (names from checks.sql) on stdout and exits
# non-zero on any failure. Installing the clients is setup.sh's job, not this script's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
client="${1:-}"
for var in PGHOST PGPORT PGUSER PGDATABASE; do
  if [ -z "${!var:-}" ]; then echo "run.sh: $var is not set" >&2; exit 2; fi
done
export PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD="${PGPASSWORD:-}"
python="$repo/.venv/bin/python"
jdbc_jar=/usr/share/java/postgresql.jar

case "$client" in
  psycopg)
    exec "$python" "$here/python/psycopg_client.py" ;;
  sqlalchemy)
    exec "$python" "$here/python/sqlalchemy_client.py" ;;
  jdbc)
    [ -f "$jdbc_jar" ] || { echo "run.sh: $jdbc_jar is missing (run tests/clients/setup.sh)" >&2; exit 2; }
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
    javac -nowarn -cp "$jdbc_jar" -d "$out" "$here/java/ClientCheck.java"
    status=0
    java -cp "$out:$jdbc_jar" ClientCheck || status=$?
    exit "$status" ;;
  node)
    [ -d "$here/node/node_modules/pg" ] || { echo "run.sh: node-postgres is not installed (run tests/clients/setup.sh)" >&2; exit 2; }
    exec node "$here/node/client.js" ;;
  *)
    echo "usage: $0 psycopg|sqlalchemy|jdbc|node" >&2
    exit 2 ;;
esac
