#!/bin/sh
# The browser tests/test_serve_browser.py drives: Debian's chromium (Playwright launches it
# with executable_path; no `playwright install`). Idempotent: nothing to do when chromium is
# there. Installs it as root where apt-get exists; otherwise says why the test will be
# skipped. Never fails: without a browser the test skips, saying so.

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: installing Debian's chromium for the browser test"
    if apt-get update -qq && apt-get install -y -qq chromium; then
        exit 0
    fi
    echo "install-browser: apt-get could not install chromium"
fi
echo "install-browser: no chromium: tests/test_serve_browser.py will be skipped;" \
    "install it with 'sudo apt-get install chromium' (Debian/Ubuntu) to run it"
exit 0
