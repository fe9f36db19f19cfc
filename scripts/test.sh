#!/usr/bin/env bash
# Installs what the tests need (a virtualenv with the studio and its test extras; Debian's chromium
# for the browser tests when missing) and runs the suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# A current pip: the one `venv` ships (23.x) gives up on the test extras' dependency graph (azure-ai-ml with
# mlflow's opentelemetry) with InconsistentCandidate, where a newer resolver finds a solution.
.venv/bin/pip install -q --disable-pip-version-check --upgrade 'pip>=25'
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; browser tests will fail" >&2
fi
exec .venv/bin/pytest "$@"
