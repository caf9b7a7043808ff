#!/bin/sh
# Debian tools some tests drive: chromium (tests/test_serve_browser.py; Playwright launches it
# with executable_path, no `playwright install`) and the espeak-ng command (voxpipe-local's
# fallback TTS, tests/test_espeak_command.py). Idempotent: installs only what is missing, as
# root where apt-get exists; otherwise says which tests will be skipped. Never fails: without
# a tool its tests skip, saying so.

missing=""
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-debian-tools: installing$missing for the tests that drive them"
    # shellcheck disable=SC2086  # the package names are meant to split
    if apt-get update -qq && apt-get install -y -qq $missing >/dev/null; then
        exit 0
    fi
    echo "install-debian-tools: apt-get could not install$missing"
fi
echo "install-debian-tools: not installed:$missing. Their tests will be skipped" \
    "(chromium: tests/test_serve_browser.py; espeak-ng: tests/test_espeak_command.py);" \
    "install them with 'sudo apt-get install$missing' (Debian/Ubuntu) to run them"
exit 0
