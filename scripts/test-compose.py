"""`make test-compose`: the docker-compose stack, built and run for real, checked from outside.

Builds the images, starts every service with the demo profile, waits for each healthcheck, then
proves the data path both ways (MQTT -> Redis -> dashboard API, and a publish from the API back to
an MQTT subscriber on this machine), that the demo sensors are listed as clients, that Redis and
the bridge can be restarted under it, and that no container logged a warning. Then it adds the
"multi" and "group" profiles (a second broker with its own named bridge, and a second member of a
bridge group) and checks each reaches the dashboard on its own. Tears everything down, volumes
included, whatever happens. Needs a Docker engine that builds with BuildKit, and the ports the
compose file publishes (1883, 1884, 9001, 6379 on 127.0.0.1, 8082) free. Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mqtt-redis-bridge-compose-check"
TOKEN = "compose-check-" + uuid.uuid4().hex[:12]
DASHBOARD = "http://127.0.0.1:8082"
HEALTHY_SERVICES = ("mosquitto", "redis", "mqtt-bridge", "mqtt-dashboard")
checks = 0


def say(text: str) -> None:
    print(f"compose-check: {text}", flush=True)


def ok(text: str) -> None:
    global checks
    checks += 1
    say(f"ok {checks}: {text}")


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("compose-check: needs `docker compose` or `docker-compose` and a running Docker engine")


COMPOSE = compose_command()
ENV = {**os.environ, "DOCKER_BUILDKIT": "1", "COMPOSE_DOCKER_CLI_BUILD": "1", "DASHBOARD_TOKEN": TOKEN}


PROFILES = ["demo"]  # the second phase adds "multi" and "group"


def compose(*args: str, capture: bool = False) -> str:
    argv = [*COMPOSE, "-p", PROJECT, *(f for p in PROFILES for f in ("--profile", p)), *args]
    done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=capture, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"compose-check: `{' '.join(argv)}` failed ({done.returncode})\n{done.stderr or ''}")
    return done.stdout if capture else ""


def wait(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (requests.RequestException, OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"compose-check: FAILED: no {what} within {timeout:g} s")


def health(service: str) -> str:
    container = compose("ps", "-q", service, capture=True).strip()
    if not container:
        return "absent"
    done = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            container,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def wait_healthy(services: tuple[str, ...], timeout: float = 180) -> None:
    wait(f"healthy {', '.join(services)}", lambda: all(health(s) == "healthy" for s in services), timeout)


def api(path: str, **kwargs: Any) -> requests.Response:
    method = kwargs.pop("method", "GET")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return requests.request(method, f"{DASHBOARD}{path}", headers=headers, timeout=10, **kwargs)


def mqtt_round_trip(label: str, port: int = 1883, api_base: str = "/api") -> str:
    """A message published on the host's ``port`` is listed by the dashboard's history API (under
    ``api_base``: /api for the unnamed broker, /api/brokers/<name> for a named one)."""
    topic = f"compose-check/{label.replace(' ', '-')}/{uuid.uuid4().hex[:8]}"
    payload = f"hello from the host ({label})"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()

    def listed() -> bool:
        found = api(f"{api_base}/messages", params={"topic": topic, "limit": 5}).json()["messages"]
        return any(m["payload"] == payload for m in found)

    wait(f"message on {topic} in {api_base}/messages", listed, 60)
    ok(f"MQTT -> Redis -> dashboard API ({label})")
    return topic


def messages_on(topic: str, api_base: str = "/api") -> int:
    return len(api(f"{api_base}/messages", params={"topic": topic, "limit": 10}).json()["messages"])


def more_profiles() -> None:
    """The "multi" profile (broker b on 1884, its bridge BRIDGE_NAME=b) and the "group" profile
    (mqtt-bridge and mqtt-bridge-2 as two members of the group "bridges"), started on top."""
    PROFILES.extend(("multi", "group"))
    ENV["BRIDGE_GROUP"] = "bridges"
    compose("up", "-d")
    services = (*HEALTHY_SERVICES, "mosquitto-b", "mqtt-bridge-b", "mqtt-bridge-2")
    wait_healthy(services)
    ok("the multi and group profiles: mosquitto-b, mqtt-bridge-b and mqtt-bridge-2 healthy too")

    def two_members() -> list[str]:
        group = api("/api/health").json()["bridge"].get("group") or {}
        alive = [m["member"] for m in group.get("members", []) if m.get("alive", True)]
        return alive if len(alive) == 2 and group.get("leader") in alive else []

    members = wait("two live members and a leader in /api/health", two_members, 60)
    ok(f"bridge group 'bridges': members {', '.join(sorted(members))}, one leading")
    topic = mqtt_round_trip("through the group")
    time.sleep(2)  # a second copy, if there were one, would be written by now
    if messages_on(topic) != 1:
        raise SystemExit(f"compose-check: FAILED: {messages_on(topic)} copies of the group's message")
    ok("the group forwarded the message exactly once")
    topic_b = mqtt_round_trip("broker b", port=1884, api_base="/api/brokers/b")
    if messages_on(topic_b) != 0:
        raise SystemExit("compose-check: FAILED: broker b's message reached the unnamed broker's history")
    ok("broker b's message is b's alone")

    def both_brokers() -> dict[str, Any]:
        brokers = requests.get(f"{DASHBOARD}/health", timeout=10).json().get("brokers", {})
        wanted = {"online": True, "connected": True}
        return brokers if brokers.get("default") == wanted and brokers.get("b") == wanted else {}

    wait("/health reporting brokers default and b online", both_brokers, 60)
    ok("/health reports both brokers online and connected")


def publish_back() -> None:
    """POST /api/publish reaches a subscriber on the host."""
    topic = f"compose-check/back/{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.connect("127.0.0.1", 1883)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        time.sleep(1)  # the SUBACK; a publish before it would not be delivered
        answer = api(
            "/api/publish", method="POST", json={"topic": topic, "payload": "from the API", "qos": 1}
        )
        if answer.status_code != 200:
            raise SystemExit(
                f"compose-check: FAILED: POST /api/publish said {answer.status_code} {answer.text}"
            )
        wait(f"the API's publish on {topic} at the host's subscriber", lambda: b"from the API" in got, 20)
    finally:
        client.disconnect()
        client.loop_stop()
    ok("dashboard API -> bridge -> MQTT subscriber on the host")


def demo_clients_listed() -> None:
    def listed() -> list[dict[str, Any]]:
        clients = api("/api/clients").json()["clients"]
        return [c for c in clients if "demo" in c["client_id"]]

    found = wait("demo sensors in /api/clients", listed, 60)
    protocols = sorted({c["protocol"] for c in found})
    if not set(protocols) <= {"MQTT 3.1", "MQTT 3.1.1", "MQTT 5"}:
        raise SystemExit(f"compose-check: FAILED: protocols listed as {protocols}, not as people name them")
    ok(f"the demo sensors are listed as clients ({len(found)}, {', '.join(protocols)})")


def pinned_broker_runs() -> None:
    """The broker in the stack is the release docker-compose.yml pins (and the tests run)."""
    text = (ROOT / "docker-compose.yml").read_text()
    tag = re.search(r"^    image: eclipse-mosquitto:(\S+)$", text, flags=re.MULTILINE)
    if tag is None:
        raise SystemExit("compose-check: FAILED: docker-compose.yml names no eclipse-mosquitto tag")

    def version() -> str | None:
        found = api("/api/broker/stats").json()
        return (found.get("data") or {}).get("version")

    running = wait("the broker's version in /api/broker/stats", version, 60)
    if running != tag.group(1):
        raise SystemExit(f"compose-check: FAILED: eclipse-mosquitto:{tag.group(1)} runs mosquitto {running}")
    ok(f"the broker is eclipse-mosquitto:{tag.group(1)}, as pinned, and reports mosquitto {running}")


def _pin(line: str) -> tuple[str, str]:
    """``"Zope.Event==6.2"`` -> ``("zope-event", "6.2")``: names as pip compares them."""
    name, version = line.strip().split("==", 1)
    return re.sub(r"[-_.]+", "-", name).lower(), version.strip()


def locked_versions_installed() -> None:
    """Every package in both images is the version requirements.lock pins."""
    pinned = dict(
        _pin(line.split(";", 1)[0])
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    for service in ("mqtt-bridge", "mqtt-dashboard"):
        frozen = compose("exec", "-T", service, "python", "-m", "pip", "freeze", capture=True)
        installed = dict(_pin(line) for line in frozen.splitlines() if "==" in line)
        installed.pop("mqtt-redis-bridge", None)
        off = {name: version for name, version in installed.items() if pinned.get(name) != version}
        if off or not installed:
            raise SystemExit(f"compose-check: FAILED: {service} holds versions the lock does not pin: {off}")
        ok(f"{service}: all {len(installed)} installed packages are the locked versions")


def no_warnings() -> None:
    logs = compose("logs", "--no-color", capture=True)
    bad = [line for line in logs.splitlines() if "MonkeyPatchWarning" in line or "Traceback" in line]
    if bad:
        raise SystemExit("compose-check: FAILED: the containers logged:\n" + "\n".join(bad[:20]))
    ok("no MonkeyPatchWarning or traceback in any container's log")


def restart(service: str) -> None:
    compose("restart", service)
    wait_healthy(HEALTHY_SERVICES)
    ok(f"every service healthy again after restarting {service}")


def main() -> int:
    started = time.monotonic()
    try:
        say(f"building and starting the stack ({' '.join(COMPOSE)}, project {PROJECT})")
        compose("up", "-d", "--build")
        wait_healthy(HEALTHY_SERVICES)
        ok(f"{', '.join(HEALTHY_SERVICES)} healthy after {time.monotonic() - started:.0f} s")
        wait("a running demo", lambda: health("demo") == "running", 60)
        ok("demo sensors running")
        health_body = api("/health").json()
        if health_body.get("status") != "ok":
            raise SystemExit(f"compose-check: FAILED: /health says {json.dumps(health_body)}")
        ok("/health is ok")
        locked_versions_installed()
        pinned_broker_runs()
        mqtt_round_trip("first start")
        publish_back()
        demo_clients_listed()
        restart("redis")
        mqtt_round_trip("after a Redis restart")
        restart("mqtt-bridge")
        mqtt_round_trip("after a bridge restart")
        demo_clients_listed()
        more_profiles()
        no_warnings()
        say(f"passed: {checks} checks in {time.monotonic() - started:.0f} s")
        return 0
    finally:
        say("tearing down (containers, network, volumes)")
        compose("down", "-v", "--remove-orphans")


if __name__ == "__main__":
    sys.exit(main())
