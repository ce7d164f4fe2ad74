#!/usr/bin/env bash
# Idempotent set-up of a Kondge billing checkout on Debian 12.
#   - installs the Debian packages the service and the tests need (as root);
#   - makes sure no system FreeRADIUS service holds the RADIUS ports;
#   - builds .venv from Debian's /usr/bin/python3 with pinned requirements;
#   - creates the PIN key under var/secrets with safe permissions.
# The private PostgreSQL cluster is created by `kondge server start`.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

packages=(freeradius freeradius-python3 freeradius-utils freeradius-postgresql postgresql pgbackrest
          postgresql-15-auto-failover pg-auto-failover-cli
          python3-venv python3-dev libpq-dev gcc make
          chromium chromium-driver fonts-wqy-microhei fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; run 'make setup' as root or install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the packages start their system services on install
    # (a system freeradius would hold ports 1812/1813).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A system freeradius started by the package would hold 1812/1813.
if [ "$(id -u)" = 0 ]; then
    if command -v systemctl >/dev/null && systemctl is-active --quiet freeradius 2>/dev/null; then
        systemctl stop freeradius || true
        systemctl disable freeradius >/dev/null 2>&1 || true
    fi
    if [ -f /run/freeradius/freeradius.pid ] && kill -0 "$(cat /run/freeradius/freeradius.pid)" 2>/dev/null; then
        service freeradius stop >/dev/null 2>&1 || kill "$(cat /run/freeradius/freeradius.pid)" || true
    fi
fi

# The gateways' packets wait in each FreeRADIUS socket's receive buffer
# while it is busy; the kernel grants a socket at most net.core.rmem_max
# (Debian: 208 KiB, a few hundred packets). The service asks for
# KONDGE_RECV_BUFFER (4 MiB by default); raise the limit to that for this
# boot (a line in /etc/sysctl.d/ keeps it: docs/operations.md).
want_rmem=4194304                   # kondge_billing/config.py: recv_buffer's default
case "${KONDGE_RECV_BUFFER:-}" in
    ''|*[!0-9]*) ;;                 # unset, or not a number (the service refuses it)
    *) [ "$KONDGE_RECV_BUFFER" -gt "$want_rmem" ] && want_rmem=$KONDGE_RECV_BUFFER ;;
esac
rmem=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo "$want_rmem")
if [ "$rmem" -lt "$want_rmem" ]; then
    if [ "$(id -u)" = 0 ] && { echo "$want_rmem" > /proc/sys/net/core/rmem_max; } 2>/dev/null; then
        echo "setup: raised net.core.rmem_max from $rmem to $want_rmem (sockets' receive buffers)"
    else
        echo "setup: net.core.rmem_max is $rmem; as root: sysctl -w net.core.rmem_max=$want_rmem" >&2
    fi
fi

# The venv FreeRADIUS imports from must match its embedded interpreter.
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: building .venv from /usr/bin/python3"
    mkdir -p var/log
    pip_log=var/log/setup-pip.log
    if ! { /usr/bin/python3 -m venv .venv &&
           .venv/bin/pip install -r requirements.txt &&
           .venv/bin/pip install --no-deps -e . ; } >"$pip_log" 2>&1; then
        tail -20 "$pip_log" >&2
        echo "setup: building .venv failed; the whole log is in $pip_log" >&2
        exit 1
    fi
    cp requirements.txt "$stamp"
fi

mkdir -p var/secrets
chmod 700 var/secrets
if [ ! -s var/secrets/pin.key ]; then
    umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/secrets/pin.key
    echo "setup: created var/secrets/pin.key (keep it: PINs cannot be checked without it)"
fi
# FreeRADIUS refuses a world-writable configuration.
chmod -R go-w freeradius mods-config
echo "setup: ok ($top)"
