# shellcheck shell=bash
# The variables are for the test files that load this one.
# shellcheck disable=SC2034
#
# Shared setup for the tool tests: the tools under test come from $CM_BIN
# (the plain or the sanitizer build), fixtures from tests/fixtures.
bats_require_minimum_version 1.5.0
TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
CM_BIN=${CM_BIN:-$TOP/bin}
PATH=$CM_BIN:$TOP/bin:$PATH
FIX=$TOP/tests/fixtures
EX=$TOP/examples
export PATH

# The test's own scratch directory, removed by bats.
T=${BATS_TEST_TMPDIR:-$(mktemp -d)}
