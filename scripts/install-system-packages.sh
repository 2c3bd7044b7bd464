#!/usr/bin/env bash
# Install the Debian packages the project needs, where missing:
# libevent (the server), chromium + chromium-driver (the browser tests), nginx-light
# (the tests put it in front of the server, as README.md's production setup does),
# wrk (the benches), python3-venv (the virtualenv).  Redis and PostgreSQL: see
# ensure-services.sh.
set -euo pipefail

need=()
[ -e /usr/lib/x86_64-linux-gnu/libevent-2.1.so.7 ] || [ -e /usr/lib/aarch64-linux-gnu/libevent-2.1.so.7 ] \
  || ldconfig -p 2>/dev/null | grep -q 'libevent-2.1.so.7' || need+=(libevent-2.1-7)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
