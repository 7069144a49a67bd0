#!/usr/bin/env bash
# Installs schemathesis (pinned, from PyPI) into a venv under .cache/ on first use, then runs it
# with the given arguments. Used by the OpenAPI conformance test (test/integration/openapi-conformance.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
VENV=.cache/schemathesis-$VERSION
if [ ! -x "$VENV/bin/st" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
exec "$VENV/bin/st" "$@"
