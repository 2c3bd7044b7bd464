#!/usr/bin/env bash
# Install the Debian packages a purpose needs, where missing.  Usage:
#   install-system-packages.sh [run|test|bench]
# run:   libevent (the server), python3-venv (the virtualenv)
# test:  run's, plus chromium + chromium-driver (the browser tests) and nginx-light (the
#        tests put it in front of the server, as README.md's production setup does)
# bench: run's, plus wrk (load generator)
# Redis and PostgreSQL: see ensure-services.sh.
set -euo pipefail
purpose=${1:-test}

need=()
[ -e /usr/lib/x86_64-linux-gnu/libevent-2.1.so.7 ] || [ -e /usr/lib/aarch64-linux-gnu/libevent-2.1.so.7 ] \
  || ldconfig -p 2>/dev/null | grep -q 'libevent-2.1.so.7' || need+=(libevent-2.1-7)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ "$purpose" = test ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
fi
if [ "$purpose" = bench ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
