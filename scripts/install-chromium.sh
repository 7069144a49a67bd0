#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test (driven by playwright-core) when
# /usr/bin/chromium is missing. Playwright's own browser download is not used: Debian's package
# comes through apt like the rest of the machine's software.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
