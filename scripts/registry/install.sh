#!/usr/bin/env bash
# The registry tests' dependencies are installed with the rest of the test dependencies.
exec "$(dirname "$0")/../install-test-deps.sh"
