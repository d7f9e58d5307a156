#!/usr/bin/env bash
# Browser and Node tests of in-app feedback (docs/in-app.md) and of the console
# (docs/console.md). Installs what is missing (Debian's Chromium, the npm packages),
# generates the JavaScript protobuf code, builds the test servers, and runs the
# scenarios in headless Chromium and with the Connect gRPC-Web client. Screenshots go
# to test-output/browser/ (the console's to test-output/browser/console/).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing Node.js"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "== generating JavaScript from proto/ (buf + protoc-gen-es)"
rm -rf gen
npx --no-install buf generate ../../proto --template buf.gen.yaml

echo "== building the test servers (examples/browser_fixture.rs, examples/console_fixture.rs)"
(cd "$ROOT" && cargo build --quiet --example browser_fixture --example console_fixture)

export RAPPORT_FIXTURE="$ROOT/target/debug/examples/browser_fixture"
export RAPPORT_CONSOLE_FIXTURE="$ROOT/target/debug/examples/console_fixture"
export RAPPORT_TEST_OUTPUT="$ROOT/test-output/browser"
rm -rf "$RAPPORT_TEST_OUTPUT"
echo "== scenarios (headless $(/usr/bin/chromium --version 2>/dev/null | head -n1))"
node --test --test-concurrency=1 --test-reporter=spec browser.test.mjs console.test.mjs
