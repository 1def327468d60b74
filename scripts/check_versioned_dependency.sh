#!/usr/bin/env bash
# Builds Tests/Consumer, a package that depends on Chronos by URL and version, against a clone of
# this repository's HEAD tagged 1.0.0 in a temporary directory (the repository itself is not
# tagged), then runs it. Fails when SwiftPM refuses Chronos as a versioned dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/chronos-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q --bare . "$work/chronos.git"
git -C "$work/chronos.git" tag 1.0.0 HEAD
cp -R Tests/Consumer "$work/consumer"
echo "building Tests/Consumer against $work/chronos.git at 1.0.0"
CHRONOS_REPOSITORY="file://$work/chronos.git" CHRONOS_VERSION=1.0.0 \
    swift build --package-path "$work/consumer" --scratch-path "$work/build" -q
"$work/build/debug/ChronosConsumer"
