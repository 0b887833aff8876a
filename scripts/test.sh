#!/usr/bin/env bash
# Runs every test: the Rust suites, then the wire tests that drive the real binary with real AWS
# clients (boto3, botocore over CBOR, the AWS CLI, the JavaScript SDK; the Rust SDK tests are
# part of the cargo suite). Installs the pinned client packages it needs on first use, into
# ~/.cache/gitsync (or $GITSYNC_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache="${GITSYNC_CACHE:-$HOME/.cache/gitsync}"
mkdir -p "$cache"

step() { printf '\n=== %s\n' "$*"; }

# A venv per requirements file, rebuilt when the file changes.
venv() {
  local name=$1 requirements=$2 dir="$cache/$1"
  if ! cmp -s "$requirements" "$dir/.requirements" 2>/dev/null; then
    {
      step "installing $name from $requirements"
      rm -rf "$dir"
      python3 -m venv "$dir"
      "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
      cp "$requirements" "$dir/.requirements"
    } >&2
  fi
  echo "$dir"
}

# PostgreSQL: the store tests and a second run of the wire tests use GITSYNC_TEST_DATABASE_URL.
# Without it, a local server on 127.0.0.1:5432 is used when one answers; otherwise those runs are
# skipped, and say so.
if [ -z "${GITSYNC_TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
  export GITSYNC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
fi

step "cargo build"
cargo build --workspace --bins --examples
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export GITSYNC_BIN="$target_dir/debug/gitsync"
export GITSYNC_SEED_BIN="$target_dir/debug/examples/seed_sync_history"

step "cargo test"
cargo test --workspace

clients=$(venv venv-clients tests/clients/requirements.txt)
awscli=$(venv venv-awscli tests/clients/requirements-awscli.txt)
export GITSYNC_AWS_CLI="$awscli/bin/aws"

js="$cache/js"
if ! cmp -s tests/js/package-lock.json "$js/package-lock.json" 2>/dev/null || [ ! -d "$js/node_modules" ]; then
  step "installing the JavaScript SDK clients"
  rm -rf "$js"; mkdir -p "$js"
  cp tests/js/package.json tests/js/package-lock.json "$js/"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
export GITSYNC_JS_MODULES="$js/node_modules"

cd "$root/tests/clients"
if [ -n "${GITSYNC_TEST_DATABASE_URL:-}" ]; then
  step "wire tests on PostgreSQL (pytest, $GITSYNC_TEST_DATABASE_URL)"
  "$clients/bin/python" -m pytest -q "$@"
else
  step "wire tests on PostgreSQL: SKIPPED (set GITSYNC_TEST_DATABASE_URL to run them)"
fi
step "wire tests on SQLite (pytest)"
env -u GITSYNC_TEST_DATABASE_URL "$clients/bin/python" -m pytest -q "$@"
