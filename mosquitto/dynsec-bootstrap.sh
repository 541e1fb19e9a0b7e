#!/bin/sh
# One-time bootstrap of mosquitto's dynamic security file for mqtt-redis-bridge (docs/mosquitto.md,
# "Tenants: dynamic security"). Run by the compose profile "dynsec" (service dynsec-init) inside the
# broker image, as the broker's user, before the broker first starts with mosquitto.dynsec.conf:
#
#   docker compose -f docker-compose.yml -f docker-compose.dynsec.yml --profile dynsec run --rm dynsec-init
#
# 1. `mosquitto_ctrl dynsec init` writes the file with the bridge's account (MQTT_USERNAME,
#    MQTT_PASSWORD) and its admin role, which may use $CONTROL but publish nothing else;
# 2. a throwaway broker on a loopback port inside this container loads the file, and mosquitto_ctrl
#    adds the role "bridge-data" (publishClientSend on #) to that account.
# The password goes to mosquitto_ctrl on stdin or in its options file, never on a command line.
# Does nothing when the file exists already.
set -eu

CONF="${1:-/mosquitto/config/mosquitto.conf}"
FILE="$(sed -n 's/^plugin_opt_config_file[[:space:]]*//p' "$CONF")"
PLUGIN="$(sed -n 's/^plugin[[:space:]][[:space:]]*//p' "$CONF")"
PORT=18830
say() { printf 'dynsec-bootstrap: %s\n' "$*"; }
die() { printf 'dynsec-bootstrap: %s\n' "$*" >&2; exit 1; }

[ -n "$FILE" ] && [ -n "$PLUGIN" ] || die "$CONF has no plugin / plugin_opt_config_file line"
if [ -s "$FILE" ]; then
    say "$FILE exists already; nothing to do (delete it to start over: every account in it is lost)"
    exit 0
fi
[ -f "$PLUGIN" ] || die "the plugin is not at $PLUGIN (the plugin line of $CONF); find it with: find / -name mosquitto_dynamic_security.so"
[ -n "${MQTT_USERNAME:-}" ] && [ -n "${MQTT_PASSWORD:-}" ] \
    || die "set MQTT_USERNAME and MQTT_PASSWORD (the bridge's account) in .env first"

printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | mosquitto_ctrl dynsec init "$FILE" "$MQTT_USERNAME" >/dev/null
say "created $FILE with the account $MQTT_USERNAME"

work="$(mktemp -d)"
broker=""
stop() {
    if [ -n "$broker" ]; then kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap stop EXIT
umask 077
# "user": started as root, mosquitto would become the mosquitto user, which could not save the file.
printf 'listener %s 127.0.0.1\nallow_anonymous false\nplugin %s\nplugin_opt_config_file %s\nuser %s\n' \
    "$PORT" "$PLUGIN" "$FILE" "$(id -un)" >"$work/broker.conf"
printf -- '-h 127.0.0.1\n-p %s\n-u %s\n-P %s\n' "$PORT" "$MQTT_USERNAME" "$MQTT_PASSWORD" >"$work/mosquitto_ctrl"
mosquitto -c "$work/broker.conf" >"$work/broker.log" 2>&1 &
broker=$!

ctrl() { XDG_CONFIG_HOME="$work" mosquitto_ctrl dynsec "$@" >>"$work/ctrl.log" 2>&1; }
tries=0
until ctrl getClient "$MQTT_USERNAME"; do
    tries=$((tries + 1))
    [ "$tries" -lt 40 ] || die "the temporary broker did not answer: $(tail -n 5 "$work/broker.log")"
    sleep 0.25
done
ctrl createRole bridge-data || die "createRole bridge-data failed: $(tail -n 3 "$work/ctrl.log")"
ctrl addRoleACL bridge-data publishClientSend '#' allow || die "addRoleACL failed: $(tail -n 3 "$work/ctrl.log")"
ctrl addClientRole "$MQTT_USERNAME" bridge-data || die "addClientRole failed: $(tail -n 3 "$work/ctrl.log")"
grep -q '"bridge-data"' "$FILE" \
    || die "the broker could not save $FILE: $(grep -i 'error' "$work/broker.log" | tail -n 2)"
say "gave $MQTT_USERNAME the role bridge-data (publish to every data topic); start the stack now"
