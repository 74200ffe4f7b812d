#!/usr/bin/env bash
# Installs the real clients that tests/clients/run.sh drives, on a fresh Debian machine (as root or
# with sudo); idempotent and quick when everything is there. Fails (non-zero) if anything cannot be
# installed - it never skips a client.
#   - Python venv <repo>/.venv with psycopg[binary] 3.x, SQLAlchemy 2.x, pandas 3.x
#   - a JDK (javac; openjdk-17-jdk-headless when missing) and pgjdbc (/usr/share/java/postgresql.jar,
#     Debian's libpostgresql-jdbc-java)
#   - node + npm (Debian's nodejs npm when node is missing) and node-postgres (pg, pinned in
#     tests/clients/node/package.json + package-lock.json) in tests/clients/node/node_modules
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv"
jdbc_jar=/usr/share/java/postgresql.jar
py_reqs=('psycopg[binary]>=3.1,<4' 'SQLAlchemy>=2,<3' 'pandas>=3,<4')

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else echo "setup: not root and no sudo: cannot apt-get install" >&2; fi
fi

need_apt=()
[ -x "$venv/bin/python" ] || python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)
[ -f "$jdbc_jar" ] || need_apt+=(libpostgresql-jdbc-java)
if ! command -v node >/dev/null; then
  need_apt+=(nodejs)
  command -v npm >/dev/null || need_apt+=(npm)
elif ! command -v npm >/dev/null; then
  need_apt+=(npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup (clients): apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Python: psycopg 3 (with the binary libpq build), SQLAlchemy 2, pandas 3.
if [ ! -x "$venv/bin/python" ]; then
  echo "setup (clients): python venv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
py_ok() {  # installed distributions and their major versions (no import of pandas: that is slow)
  "$venv/bin/python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
for dist, major in (("psycopg", "3"), ("psycopg-binary", "3"), ("SQLAlchemy", "2"), ("pandas", "3")):
    assert version(dist).split(".")[0] == major, (dist, version(dist))
import psycopg, sqlalchemy  # quick; pandas' import is checked by its version above
EOF
}
if ! py_ok; then
  echo "setup (clients): pip install ${py_reqs[*]}"
  "$venv/bin/pip" install --quiet "${py_reqs[@]}"
  py_ok || { echo "setup (clients): psycopg/SQLAlchemy/pandas still not importable from $venv" >&2; exit 1; }
fi

# Java: javac and pgjdbc.
command -v javac >/dev/null || { echo "setup (clients): javac missing after install" >&2; exit 1; }
[ -f "$jdbc_jar" ] || { echo "setup (clients): $jdbc_jar missing after install" >&2; exit 1; }

# Node: node-postgres at the version of package-lock.json.
command -v node >/dev/null && command -v npm >/dev/null || { echo "setup (clients): node/npm missing after install" >&2; exit 1; }
want_pg="$(node -p "require('$here/node/package-lock.json').packages['node_modules/pg'].version")"
have_pg="$(cd "$here/node" && node -p "require('pg/package.json').version" 2>/dev/null || true)"
if [ "$have_pg" != "$want_pg" ]; then
  echo "setup (clients): npm ci (pg $want_pg) in $here/node"
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  have_pg="$(cd "$here/node" && node -p "require('pg/package.json').version")"
  [ "$have_pg" = "$want_pg" ] || { echo "setup (clients): pg $have_pg installed, $want_pg wanted" >&2; exit 1; }
fi

py_versions="$("$venv/bin/python" -c 'from importlib.metadata import version as v; print(", ".join(d + " " + v(d) for d in ("psycopg", "SQLAlchemy", "pandas")))')"
jdbc_version="$(dpkg-query -W -f='${Version}' libpostgresql-jdbc-java 2>/dev/null || echo "(not from dpkg)")"
echo "setup (clients): ok ($py_versions, $(javac -version 2>&1), pgjdbc $jdbc_version, node $(node --version), pg $have_pg)"
