#!/usr/bin/env bash
# Run the whole stack on this machine: mosquitto, redis-server, the bridge, the dashboard and the
# demo sensors, each with the project's own settings, from a runtime folder (.run/).
# `make run` calls this once .venv exists. Ctrl-C (or SIGTERM) stops everything it started.
#
# Settings, all from the environment:
#   MQTT_BROKER_PORT (1883)  MQTT_WS_PORT (9001)  REDIS_PORT (6379)  DASHBOARD_PORT (8082)
#   DASHBOARD_TOKEN / DASHBOARD_PASSWORD / DASHBOARD_AUTH as for the dashboard; with none of them
#     set, a token is generated once and kept in .run/dashboard-token, so the URL stays the same
#   RUN_DEMO=0       leave the demo sensors out
#   RUN_DYNSEC=1     the broker with the dynamic security plugin (mosquitto/mosquitto.dynsec.conf), for
#     the Tenants page: the first run creates the bridge's account (password kept in
#     .run/dynsec-bridge-password) and a CONFIG_SECRET_KEY (.run/config-secret-key) when none is set
#   RUN_BROKERS=2    several brokers, each with its own bridge (and demo sensors), one Redis and
#                    one dashboard: broker 1 is the unnamed one on MQTT_BROKER_PORT, broker N is
#                    BRIDGE_NAME=broker-N on MQTT_BROKER_PORT+N-1 (websockets MQTT_WS_PORT+N-1)
#   RUN_DIR=path     another runtime folder (default: .run in the repository)
# Everything listens on 127.0.0.1 only. For a broker the rest of the network can reach, use
# docker compose or your own mosquitto.conf (docs/operations.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUN="${RUN_DIR:-$ROOT/.run}"
VENV="$ROOT/.venv"
MQTT_PORT="${MQTT_BROKER_PORT:-1883}"
WS_PORT="${MQTT_WS_PORT:-9001}"
REDIS_PORT="${REDIS_PORT:-6379}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8082}"
RUN_BROKERS="${RUN_BROKERS:-1}"
NODE_MIN="18.19"  # what the frontend's Vite needs (frontend/package.json "engines"; Debian 12 has 18.19)

say() { printf 'run-local: %s\n' "$*"; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

for spec in "MQTT_BROKER_PORT=$MQTT_PORT" "MQTT_WS_PORT=$WS_PORT" "REDIS_PORT=$REDIS_PORT" \
    "DASHBOARD_PORT=$DASHBOARD_PORT"; do
    if ! [[ "${spec#*=}" =~ ^[0-9]+$ ]] || ((${spec#*=} < 1 || ${spec#*=} > 65535)); then
        die "${spec%%=*} must be a port number (1-65535), got '${spec#*=}'"
    fi
done
[[ "$RUN_BROKERS" =~ ^[1-9]$ ]] || die "RUN_BROKERS must be a number of brokers from 1 to 9, got '$RUN_BROKERS'"
# Broker N (from 2) listens on the ports after broker 1's.
extra_ports=()
for ((n = 2; n <= RUN_BROKERS; n++)); do
    extra_ports+=("MQTT_BROKER_PORT+$((n - 1))=$((MQTT_PORT + n - 1))" "MQTT_WS_PORT+$((n - 1))=$((WS_PORT + n - 1))")
done
((MQTT_PORT + RUN_BROKERS - 1 <= 65535 && WS_PORT + RUN_BROKERS - 1 <= 65535)) \
    || die "RUN_BROKERS=$RUN_BROKERS needs $RUN_BROKERS ports from MQTT_BROKER_PORT and MQTT_WS_PORT up"
[[ "$RUN" != *[[:space:]]* ]] || die "the runtime folder path must not contain spaces: $RUN (set RUN_DIR)"

# --- 1. System packages ----------------------------------------------------------------------

find_bin() {  # mosquitto lives in /usr/sbin, which is not on every user's PATH
    command -v "$1" 2>/dev/null || { [[ -x "/usr/sbin/$1" ]] && echo "/usr/sbin/$1"; } || true
}

node_ok() {  # node and npm present and new enough for the frontend build
    command -v node >/dev/null && command -v npm >/dev/null || return 1
    node -e "const [a, b] = process.versions.node.split('.').map(Number);
             const [x, y] = '$NODE_MIN'.split('.').map(Number);
             process.exit(a > x || (a === x && b >= y) ? 0 : 1)"
}

need_frontend=false
[[ -f dashboard/static/index.html ]] || need_frontend=true

missing=()
[[ -n "$(find_bin mosquitto)" ]] || missing+=(mosquitto)
[[ -n "$(find_bin redis-server)" ]] || missing+=(redis-server)
if $need_frontend && ! command -v node >/dev/null; then missing+=(nodejs npm); fi

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
        die "missing: ${missing[*]}. This machine has no apt-get: install mosquitto, redis-server" \
            "and Node.js >= $NODE_MIN with npm using its package manager, then run this again."
    fi
    if [[ "$(id -u)" -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
        sudo=(sudo)
    else
        die "missing: ${missing[*]}. Install them with:  sudo apt-get install -y ${missing[*]}"
    fi
    say "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    # On a machine with systemd, installing the packages also starts the system's own broker and
    # Redis on 1883 and 6379. This script runs its own copies, so stop the ones it just installed.
    for service in mosquitto redis-server; do
        if [[ " ${missing[*]} " == *" $service "* ]] && command -v systemctl >/dev/null \
            && systemctl is-active --quiet "$service" 2>/dev/null; then
            "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
            say "stopped and disabled the system $service service apt started" \
                "(this script runs its own; to get it back: sudo systemctl enable --now $service)"
        fi
    done
fi
MOSQUITTO_BIN="$(find_bin mosquitto)"
REDIS_BIN="$(find_bin redis-server)"
[[ -n "$MOSQUITTO_BIN" && -n "$REDIS_BIN" ]] || die "mosquitto or redis-server still not found after installing"

[[ -x "$VENV/bin/mqtt-redis-bridge" && -x "$VENV/bin/mqtt-dashboard" ]] \
    || die "no project virtualenv in .venv: run 'make run' (it creates one), or" \
        "python3 -m venv .venv && .venv/bin/pip install -e ."

# --- 2. Ports (before anything slow) -------------------------------------------------------------

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

busy=()
for spec in "MQTT_BROKER_PORT=$MQTT_PORT" "MQTT_WS_PORT=$WS_PORT" "REDIS_PORT=$REDIS_PORT" \
    "DASHBOARD_PORT=$DASHBOARD_PORT" ${extra_ports[@]+"${extra_ports[@]}"}; do
    if port_busy "${spec#*=}"; then busy+=("$spec"); fi
done
if ((${#busy[@]})); then
    for spec in "${busy[@]}"; do
        printf 'run-local: port %s (%s) is already in use on this machine\n' "${spec#*=}" "${spec%%=*}" >&2
    done
    # Installing the Debian packages starts the system's own broker and Redis on the default ports.
    for service in mosquitto redis-server; do
        if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
            printf 'run-local: the system %s service is running; this script runs its own.' "$service" >&2
            printf ' Stop it with: sudo systemctl disable --now %s\n' "$service" >&2
        fi
    done
    die "stop what is listening there (see: ss -ltnp), or choose other ports, e.g." \
        "MQTT_BROKER_PORT=1884 MQTT_WS_PORT=9002 REDIS_PORT=6380 DASHBOARD_PORT=8083 make run"
fi

# --- 3. The frontend, once --------------------------------------------------------------------

if $need_frontend; then
    node_ok || die "building the dashboard needs Node.js >= $NODE_MIN and npm" \
        "(found: $(node --version 2>/dev/null || echo none)). Debian 12 and Ubuntu 24.04 ship older" \
        "versions: install a current Node.js (nodejs.org, NodeSource or nvm) and run this again."
    say "building the frontend into dashboard/static (first run only)"
    # Only what building needs (make test installs the test tools and runs the type check).
    (cd frontend && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build >/dev/null) \
        || die "building the frontend failed (see above)"
fi

# --- 4. The runtime folder ------------------------------------------------------------------------

mkdir -p "$RUN/redis" "$RUN/logs"
# RUN_DYNSEC=1: broker 1 loads the dynamic security plugin (the others, of RUN_BROKERS, do not).
source_conf=mosquitto/mosquitto.conf
dynsec_args=()
if [[ "${RUN_DYNSEC:-0}" == 1 ]]; then
    source_conf=mosquitto/mosquitto.dynsec.conf
    plugin=""
    for candidate in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so \
        /usr/local/lib/mosquitto_dynamic_security.so; do
        if [[ -f "$candidate" ]]; then plugin="$candidate"; break; fi
    done
    [[ -n "$plugin" ]] || die "RUN_DYNSEC=1: mosquitto_dynamic_security.so not found (Debian's mosquitto package has it)"
    dynsec_json="$RUN/mosquitto/dynamic-security.json"
    dynsec_args=(-e "s|^plugin .*\$|plugin $plugin|" -e "s|^plugin_opt_config_file .*\$|plugin_opt_config_file $dynsec_json|")
fi
# render_conf N: broker N's mosquitto.conf (broker 1 keeps the names it always had)
render_conf() {
    local n=$1 suffix="" mqtt=$((MQTT_PORT + $1 - 1)) ws=$((WS_PORT + $1 - 1))
    ((n == 1)) || suffix="-$n"
    local conf="$RUN/mosquitto$suffix.conf" data="$RUN/mosquitto$suffix/"
    mkdir -p "$data"
    local source=mosquitto/mosquitto.conf extra=()
    if ((n == 1)); then source=$source_conf extra=(${dynsec_args[@]+"${dynsec_args[@]}"}); fi
    # Loopback only. A websockets listener ignores the address of its listener line in mosquitto
    # 2.0 (libwebsockets binds every interface, IPv4 and IPv6) unless it is told to use IPv4 only:
    # "socket_domain ipv4" makes it bind 127.0.0.1 (checked with ss; bind_interface is ignored
    # there). An anonymous broker must never be reachable from the network.
    sed -e "s|^listener 1883\$|listener $mqtt 127.0.0.1|" \
        -e "s|^listener 9001\$|listener $ws 127.0.0.1\nsocket_domain ipv4|" \
        -e "s|^persistence_location .*\$|persistence_location $data|" \
        ${extra[@]+"${extra[@]}"} "$source" >"$conf"
    for line in "listener $mqtt 127.0.0.1" "listener $ws 127.0.0.1" "socket_domain ipv4" "persistence_location $data"; do
        grep -qxF "$line" "$conf" || die "mosquitto/mosquitto.conf has lost a line this script rewrites" \
            "(listener 1883, listener 9001, persistence_location): cannot render '$line'"
    done
    # Started as root, mosquitto would switch to the "mosquitto" user, which may not be able to write
    # .run/; then it stops logging altogether, $SYS/broker/log included. Stay whoever started it.
    printf '\n# added by scripts/run-local.sh\nuser %s\n' "$(id -un)" >>"$conf"
}
for ((n = 1; n <= RUN_BROKERS; n++)); do render_conf "$n"; done
conf="$RUN/mosquitto.conf"

auth="$(printf '%s' "${DASHBOARD_AUTH:-on}" | tr '[:upper:]' '[:lower:]')"
if [[ -z "${DASHBOARD_TOKEN:-}" && -z "${DASHBOARD_PASSWORD:-}" && ! "$auth" =~ ^(off|false|no|0)$ ]]; then
    token_file="$RUN/dashboard-token"
    if [[ ! -s "$token_file" ]]; then
        (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$token_file")
    fi
    DASHBOARD_TOKEN="$(cat "$token_file")"
    export DASHBOARD_TOKEN
fi

export MQTT_BROKER_HOST=127.0.0.1 MQTT_BROKER_PORT="$MQTT_PORT"

# Dynamic security: the bridge's account (init's admin role, plus a role for data topics, added once
# the broker runs) and the key that seals the passwords the Tenants page sends. Passwords go to
# mosquitto_ctrl on stdin or in its options file, never on a command line (ps would show them).
dynsec_new=false
if [[ "${RUN_DYNSEC:-0}" == 1 ]]; then
    command -v mosquitto_ctrl >/dev/null || die "RUN_DYNSEC=1 needs mosquitto_ctrl (Debian: the mosquitto package)"
    (umask 077 && mkdir -p "$RUN/ctrl")
    if [[ ! -s "$RUN/dynsec-bridge-password" ]]; then
        rm -f "$dynsec_json"
        (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$RUN/dynsec-bridge-password")
    fi
    MQTT_USERNAME=mqtt-bridge MQTT_PASSWORD="$(cat "$RUN/dynsec-bridge-password")"
    export MQTT_USERNAME MQTT_PASSWORD
    if [[ ! -s "$dynsec_json" ]]; then
        printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" \
            | mosquitto_ctrl dynsec init "$dynsec_json" "$MQTT_USERNAME" >/dev/null
        dynsec_new=true
    fi
    (umask 077 && printf -- '-h 127.0.0.1\n-p %s\n-u %s\n-P %s\n' "$MQTT_PORT" "$MQTT_USERNAME" "$MQTT_PASSWORD" \
        >"$RUN/ctrl/mosquitto_ctrl")
    if [[ -z "${CONFIG_SECRET_KEY:-}" ]]; then
        if [[ ! -s "$RUN/config-secret-key" ]]; then
            (umask 077 && "$VENV/bin/mqtt-redis-bridge" secret-key >"$RUN/config-secret-key")
        fi
        CONFIG_SECRET_KEY="$(cat "$RUN/config-secret-key")"
        export CONFIG_SECRET_KEY
    fi
fi
export REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT"
export DASHBOARD_HOST="${DASHBOARD_HOST:-127.0.0.1}" DASHBOARD_PORT="$DASHBOARD_PORT"
unset REDIS_URL  # the local Redis, whatever the shell had

# --- 5. Start, watch, stop ------------------------------------------------------------------------

pids=()
names=()
stopping=false

# Each program runs in its own session and process group (setsid), so Ctrl-C reaches only this
# script, which then stops the programs in order, whole groups (Gunicorn's workers included).
start() {  # start NAME LOGFILE COMMAND...
    local name=$1 log=$2
    shift 2
    setsid "$@" >>"$log" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

stop_groups() {  # stop_groups PID... : TERM each process group, wait up to 10 s, then KILL
    local pid deadline=$((SECONDS + 10))
    for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}

# Runs from the traps below on Ctrl-C, SIGTERM or an error, and directly when a program ends;
# `stopping` makes the second call (the EXIT trap after a direct one) a no-op.
cleanup() {
    $stopping && return
    stopping=true
    ((${#pids[@]})) || return 0
    say "stopping..."
    # Programs first (the bridge still writes its final status to Redis), then Redis and the broker.
    local first=() last=() i
    for i in "${!pids[@]}"; do
        case "${names[$i]}" in
            mosquitto* | redis) last+=("${pids[$i]}") ;;
            *) first+=("${pids[$i]}") ;;
        esac
    done
    if ((${#first[@]})); then stop_groups "${first[@]}"; fi
    if ((${#last[@]})); then stop_groups "${last[@]}"; fi
    wait 2>/dev/null || true
    say "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

wait_port() {  # wait_port NAME PORT LOG : until something listens, or fail if NAME died
    local name=$1 port=$2 log=$3 deadline=$((SECONDS + 30)) pid=${pids[-1]}
    until port_busy "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "$name exited while starting (log: $log)"
        fi
        ((SECONDS < deadline)) || die "$name did not open port $port within 30 s (log: $log)"
        sleep 0.1
    done
}

logs="$RUN/logs"
start mosquitto "$logs/mosquitto.log" "$MOSQUITTO_BIN" -c "$conf"
wait_port mosquitto "$MQTT_PORT" "$logs/mosquitto.log"
if $dynsec_new; then  # the role that lets the bridge's account publish data topics (docs/mosquitto.md)
    for step in "createRole bridge-data" "addRoleACL bridge-data publishClientSend # allow" \
        "addClientRole $MQTT_USERNAME bridge-data"; do
        # shellcheck disable=SC2086  # one step, split into its words on purpose
        XDG_CONFIG_HOME="$RUN/ctrl" mosquitto_ctrl dynsec $step >>"$logs/mosquitto.log" 2>&1 \
            || die "mosquitto_ctrl dynsec $step failed (log: $logs/mosquitto.log)"
    done
    say "dynamic security: created the bridge's account $MQTT_USERNAME (password in $RUN/dynsec-bridge-password)"
fi
for ((n = 2; n <= RUN_BROKERS; n++)); do
    start "mosquitto-$n" "$logs/mosquitto-$n.log" "$MOSQUITTO_BIN" -c "$RUN/mosquitto-$n.conf"
    wait_port "mosquitto-$n" "$((MQTT_PORT + n - 1))" "$logs/mosquitto-$n.log"
done
start redis "$logs/redis.log" "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" \
    --appendonly yes --save "" --maxmemory 256mb --maxmemory-policy noeviction
wait_port redis "$REDIS_PORT" "$logs/redis.log"
say "mosquitto on 127.0.0.1:$MQTT_PORT (websockets :$WS_PORT), redis on 127.0.0.1:$REDIS_PORT; logs in $logs"
for ((n = 2; n <= RUN_BROKERS; n++)); do
    say "broker-$n: mosquitto on 127.0.0.1:$((MQTT_PORT + n - 1)) (websockets :$((WS_PORT + n - 1)))"
done

# Every program logs to its own file, so this terminal shows what a person needs: where things
# are, and the address to open.
start bridge "$logs/bridge.log" "$VENV/bin/mqtt-redis-bridge"
# Broker N's bridge: its own name (so its channels and keys are its own), port and client id.
for ((n = 2; n <= RUN_BROKERS; n++)); do
    start "bridge-$n" "$logs/bridge-$n.log" env BRIDGE_NAME="broker-$n" MQTT_BROKER_PORT="$((MQTT_PORT + n - 1))" \
        MQTT_CLIENT_ID="mqtt-bridge-service-$n" "$VENV/bin/mqtt-redis-bridge"
done
start dashboard "$logs/dashboard.log" "$VENV/bin/mqtt-dashboard"
wait_port dashboard "$DASHBOARD_PORT" "$logs/dashboard.log"
if [[ "${RUN_DEMO:-1}" != 0 ]]; then
    start demo "$logs/demo.log" "$VENV/bin/mqtt-redis-bridge" demo
    for ((n = 2; n <= RUN_BROKERS; n++)); do
        start "demo-$n" "$logs/demo-$n.log" env MQTT_BROKER_PORT="$((MQTT_PORT + n - 1))" \
            "$VENV/bin/mqtt-redis-bridge" demo
    done
fi

url="http://127.0.0.1:$DASHBOARD_PORT/"
if [[ -n "${DASHBOARD_TOKEN:-}" ]]; then
    url="${url}?token=$DASHBOARD_TOKEN"
fi
say "logs: $logs/ (bridge.log, dashboard.log, mosquitto.log, redis.log, demo.log)"
((RUN_BROKERS == 1)) || say "$RUN_BROKERS brokers: pick one with the Broker switcher at the top of the page"
[[ -n "${DASHBOARD_TOKEN:-}" || -z "${DASHBOARD_PASSWORD:-}" ]] || say "log in with DASHBOARD_PASSWORD"
say "Ctrl-C stops everything"
# The address last, on its own: the one line a person needs.
echo
say "dashboard: $url"
echo

# Any program ending on its own ends the run: better to stop loudly than to half-work.
status=0
wait -n || status=$?
for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        say "${names[$i]} exited (status $status); stopping the rest. The end of its log:"
        tail -n 20 "$logs/${names[$i]}.log" >&2 2>/dev/null || true
        break
    fi
done
cleanup
exit 1
