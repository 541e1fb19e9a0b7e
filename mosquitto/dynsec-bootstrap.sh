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
# Mosquitto 2.1's plugin writes a default file by itself when the broker starts without one (an
# "admin" account, its password in <file>.pw or MOSQUITTO_DYNSEC_PASSWORD, and roles such as
# dynsec-admin, sys-observe, topic-observe). Such a file is taken as it is: that admin adds the
# bridge's account with those three roles and bridge-data.
# The passwords go to mosquitto_ctrl on stdin or in its options file, never on a command line.
# Does nothing when the file holds the bridge's account already.
set -eu

CONF="${1:-/mosquitto/config/mosquitto.conf}"
FILE="$(sed -n 's/^plugin_opt_config_file[[:space:]]*//p' "$CONF")"
PLUGIN="$(sed -n 's/^plugin[[:space:]][[:space:]]*//p' "$CONF")"
PORT=18830
say() { printf 'dynsec-bootstrap: %s\n' "$*"; }
die() { printf 'dynsec-bootstrap: %s\n' "$*" >&2; exit 1; }

[ -n "$FILE" ] && [ -n "$PLUGIN" ] || die "$CONF has no plugin / plugin_opt_config_file line"
[ -n "${MQTT_USERNAME:-}" ] && [ -n "${MQTT_PASSWORD:-}" ] \
    || die "set MQTT_USERNAME and MQTT_PASSWORD (the bridge's account) in .env first"
if [ -s "$FILE" ] && grep -q "\"username\":[[:space:]]*\"$MQTT_USERNAME\"" "$FILE"; then
    say "$FILE has the account $MQTT_USERNAME already; nothing to do (delete the file to start over: every account in it is lost)"
    exit 0
fi
[ -f "$PLUGIN" ] || die "the plugin is not at $PLUGIN (the plugin line of $CONF); find it with: find / -name mosquitto_dynamic_security.so"

if [ -s "$FILE" ]; then
    # A file without the bridge's account: mosquitto 2.1's generated default, adopted with its admin.
    ADMIN_USER="admin"
    ADMIN_PASSWORD="${MOSQUITTO_DYNSEC_PASSWORD:-}"
    if [ -z "$ADMIN_PASSWORD" ] && [ -r "$FILE.pw" ]; then
        ADMIN_PASSWORD="$(sed -n 's/^admin //p' "$FILE.pw")"
    fi
    [ -n "$ADMIN_PASSWORD" ] || die "$FILE exists without the account $MQTT_USERNAME, and the password of its admin is \
neither in $FILE.pw nor in MOSQUITTO_DYNSEC_PASSWORD: add the account by hand (docs/mosquitto.md) or delete the file"
    ROLES="dynsec-admin sys-observe topic-observe bridge-data"
    say "$FILE was written by the plugin (mosquitto 2.1's default); adding $MQTT_USERNAME with its admin"
else
    printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | mosquitto_ctrl dynsec init "$FILE" "$MQTT_USERNAME" >/dev/null
    say "created $FILE with the account $MQTT_USERNAME"
    ADMIN_USER="$MQTT_USERNAME"
    ADMIN_PASSWORD="$MQTT_PASSWORD"
    ROLES="bridge-data"
fi

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
printf -- '-h 127.0.0.1\n-p %s\n-u %s\n-P %s\n' "$PORT" "$ADMIN_USER" "$ADMIN_PASSWORD" >"$work/mosquitto_ctrl"
mosquitto -c "$work/broker.conf" >"$work/broker.log" 2>&1 &
broker=$!

ctrl() { XDG_CONFIG_HOME="$work" mosquitto_ctrl dynsec "$@" >>"$work/ctrl.log" 2>&1; }
tries=0
until ctrl getClient "$ADMIN_USER"; do
    tries=$((tries + 1))
    [ "$tries" -lt 40 ] || die "the temporary broker did not answer: $(tail -n 5 "$work/broker.log")"
    sleep 0.25
done
if [ "$ADMIN_USER" != "$MQTT_USERNAME" ]; then
    printf '%s\n%s\n' "$MQTT_PASSWORD" "$MQTT_PASSWORD" | ctrl createClient "$MQTT_USERNAME" \
        || die "createClient $MQTT_USERNAME failed: $(tail -n 3 "$work/ctrl.log")"
fi
ctrl createRole bridge-data || die "createRole bridge-data failed: $(tail -n 3 "$work/ctrl.log")"
ctrl addRoleACL bridge-data publishClientSend '#' allow || die "addRoleACL failed: $(tail -n 3 "$work/ctrl.log")"
for role in $ROLES; do
    ctrl addClientRole "$MQTT_USERNAME" "$role" || die "addClientRole $role failed: $(tail -n 3 "$work/ctrl.log")"
done
grep -q '"bridge-data"' "$FILE" \
    || die "the broker could not save $FILE: $(grep -i 'error' "$work/broker.log" | tail -n 2)"
say "gave $MQTT_USERNAME the roles $ROLES (bridge-data: publish to every data topic); start the stack now"
