"""The real dashboard (``mqtt-dashboard``: Gunicorn, 2 gevent workers) over a real redis-server.

The bridge is simulated by publishing contract JSON straight into Redis, so these tests are
about the dashboard alone: fan-out across workers, auth over a real WebSocket, 504 without a
bridge, and /health without a heartbeat.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import socketio
import websocket

from bridge.contract import protocol
from tests.helpers import DashboardProcess, Process, start_redis, wait_for
from tests.integration.browser_client import Browser

pytestmark = pytest.mark.integration

TOKEN = "integration-token"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-stack")


@pytest.fixture(scope="module")
def redis_proc(stack_dir: Path) -> Iterator[Process]:
    proc = start_redis(stack_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dashboard(stack_dir: Path, redis_proc: Process) -> Iterator[DashboardProcess]:
    # A short command timeout: no test here has a bridge, and none should wait long for one.
    # Frames big enough for a whole burst, so exactly-once can be checked message by message
    # (frame capping itself is unit-tested).
    proc = DashboardProcess(
        stack_dir,
        redis_proc.port,
        workers=2,
        DASHBOARD_TOKEN=TOKEN,
        DASHBOARD_COMMAND_TIMEOUT="2",
        DASHBOARD_FRAME_MAX="2000",
    )
    proc.start()
    # Both relays have subscribed by now; make sure Redis agrees before anything is published.
    client = redis.Redis(port=redis_proc.port)
    wait_for(lambda: _subscribers(client) >= 2, 10, what="2 relays subscribed in Redis")
    client.close()
    yield proc
    proc.stop()


@pytest.fixture
def r(redis_proc: Process, dashboard: DashboardProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_proc.port, socket_timeout=5)
    client.delete(protocol.KEY_HEARTBEAT, protocol.KEY_STATUS_LATEST, protocol.KEY_HISTORY)
    yield client
    client.close()


def _subscribers(client: redis.Redis) -> int:
    counts = dict(client.pubsub_numsub(protocol.CHANNEL_MESSAGES))
    return int(counts.get(protocol.CHANNEL_MESSAGES.encode(), 0))


@pytest.fixture
def browsers(dashboard: DashboardProcess) -> Iterator[list[Browser]]:
    """Browsers spread over both workers: connect until each worker has at least two."""
    opened: list[Browser] = []
    try:
        while len(opened) < 30:
            opened.append(Browser(dashboard.url, {"token": TOKEN}).connect())
            per_worker = [sum(b.worker == w for b in opened) for w in {b.worker for b in opened}]
            if len(per_worker) >= 2 and min(per_worker) >= 2:
                break
        yield opened
    finally:
        for browser in opened:
            browser.close()


def publish_messages(client: redis.Redis, topics: list[str]) -> None:
    pipe = client.pipeline()
    for topic in topics:
        pipe.publish(protocol.CHANNEL_MESSAGES, protocol.message_json(topic, b"42", 0, False, time.time()))
    pipe.execute()


def test_every_browser_gets_every_message_exactly_once_on_either_worker(
    dashboard: DashboardProcess, r: redis.Redis, browsers: list[Browser]
) -> None:
    workers = {b.worker for b in browsers}
    assert len(workers) == 2, f"all browsers landed on one worker: {workers}"
    assert dashboard.pid not in workers  # workers, not Gunicorn's master

    sent = [f"plant/{n}" for n in range(300)]
    publish_messages(r, sent)
    # A last message after the rest: once it is in, any duplicate would already have arrived.
    publish_messages(r, ["plant/end"])
    for browser in browsers:
        wait_for(
            lambda b=browser: "plant/end" in b.received(), 15, what=f"plant/end on worker {browser.worker}"
        )

    for browser in browsers:
        assert browser.received() == [*sent, "plant/end"], f"browser on worker {browser.worker}"
        assert browser.skipped == 0


def test_a_filter_narrows_what_one_browser_gets(dashboard: DashboardProcess, r: redis.Redis) -> None:
    narrow = Browser(dashboard.url, {"token": TOKEN}).connect()
    wide = Browser(dashboard.url, {"token": TOKEN}).connect()
    try:
        assert narrow.sio.call("set_filter", {"filter": "home/+/temp"}, timeout=5) == {"ok": True}
        publish_messages(r, ["home/kitchen/temp", "office/a/temp", "home/hall/temp", "home/end"])
        wait_for(lambda: "home/end" in wide.received(), 10, what="the last message")
        wait_for(lambda: len(narrow.received()) >= 2, 10, what="the filtered messages")

        assert narrow.received() == ["home/kitchen/temp", "home/hall/temp"]
    finally:
        narrow.close()
        wide.close()


def test_a_socket_without_the_token_is_refused(dashboard: DashboardProcess) -> None:
    for auth in (None, {"token": "wrong"}):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(dashboard.url, transports=["websocket"], auth=auth, wait_timeout=5)


def test_a_websocket_from_another_site_is_refused(dashboard: DashboardProcess) -> None:
    # Raw Engine.IO handshakes: python-socketio's client always adds its own Origin header.
    url = dashboard.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"

    own = websocket.create_connection(url, origin=dashboard.url, timeout=5)
    opened = own.recv()
    own.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, origin="http://evil.example", timeout=5)

    assert opened.startswith("0{")  # Engine.IO's open packet
    assert refused.value.status_code == 400


def test_the_snapshot_carries_recent_history(dashboard: DashboardProcess, r: redis.Redis) -> None:
    for n in range(3):
        r.xadd(
            protocol.KEY_HISTORY,
            {protocol.HISTORY_FIELD: protocol.message_json(f"h/{n}", b"x", 0, False, 1.0)},
        )

    browser = Browser(dashboard.url, {"token": TOKEN}).connect()
    browser.close()

    assert browser.snapshot is not None
    assert [m["topic"] for m in browser.snapshot["messages"]] == ["h/0", "h/1", "h/2"]


def test_publish_without_a_bridge_answers_504_at_once(dashboard: DashboardProcess, r: redis.Redis) -> None:
    started = time.monotonic()
    response = requests.post(
        f"{dashboard.url}/api/publish",
        json={"topic": "lights/hall", "payload": "on"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )

    assert response.status_code == 504
    assert response.json() == {"error": "the bridge did not answer: no bridge is listening on Redis"}
    assert time.monotonic() - started < 1.5  # not after the command timeout


def test_health_reports_the_bridge_offline_and_names_the_worker(
    dashboard: DashboardProcess, r: redis.Redis
) -> None:
    response = requests.get(f"{dashboard.url}/health", timeout=10)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis"] is True
    assert body["bridge"]["online"] is False
    assert body["worker"] != dashboard.pid
    assert _parent_of(body["worker"]) == dashboard.pid

    # A fresh heartbeat and a connected broker make it healthy.
    now = time.time()
    r.set(protocol.KEY_HEARTBEAT, protocol.dumps({"timestamp": now, "pid": 1, "counters": {}}), ex=15)
    r.set(protocol.KEY_STATUS_LATEST, protocol.dumps(protocol.envelope("status_change", connected=True)))
    assert requests.get(f"{dashboard.url}/health", timeout=10).status_code == 200


def per_worker(url: str, request: Any, want: int = 2) -> dict[int, Any]:
    """``request(session)`` answered by each worker: a fresh connection per try, kept alive
    so /health (which names its worker) and the request land on the same worker."""
    answers: dict[int, Any] = {}

    def one_more() -> bool:
        with requests.Session() as session:
            worker = session.get(f"{url}/health", timeout=10).json()["worker"]
            answers.setdefault(worker, request(session))
        return len(answers) >= want

    wait_for(one_more, 15, interval=0, what=f"answers from {want} workers")
    return answers


def test_a_login_on_one_worker_holds_on_every_worker(dashboard: DashboardProcess) -> None:
    # Sec-Fetch-Site: none is what a browser sends for a link opened from the terminal.
    login = requests.get(
        f"{dashboard.url}/?token={TOKEN}",
        headers={"Sec-Fetch-Site": "none"},
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 303
    cookie = login.cookies.get("mqtt_dashboard_session")
    assert cookie

    def session_state(session: requests.Session) -> Any:
        session.cookies.set("mqtt_dashboard_session", cookie)
        return session.get(f"{dashboard.url}/api/session", timeout=10).json()

    states = per_worker(dashboard.url, session_state)

    assert all(state["authenticated"] is True and state["auth"] == "token" for state in states.values())


def test_logout_closes_that_sessions_open_sockets_on_every_worker(dashboard: DashboardProcess) -> None:
    login = requests.post(
        f"{dashboard.url}/api/login", json={"token": TOKEN}, headers={"Origin": dashboard.url}, timeout=10
    )
    cookie = f"mqtt_dashboard_session={login.cookies['mqtt_dashboard_session']}"
    sockets = []
    for _ in range(4):  # the workers share them out
        client = socketio.Client(reconnection=False)
        client.connect(dashboard.url, transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=10)
        sockets.append(client)
    assert all(c.connected for c in sockets)

    requests.post(
        f"{dashboard.url}/api/logout", headers={"Origin": dashboard.url, "Cookie": cookie}, timeout=10
    )

    wait_for(lambda: not any(c.connected for c in sockets), 10, what="every socket of the session closed")
    with pytest.raises(socketio.exceptions.ConnectionError):
        socketio.Client(reconnection=False).connect(
            dashboard.url, transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=5
        )


def test_a_generated_token_is_printed_once_and_shared_by_the_workers(
    stack_dir: Path, redis_proc: Process
) -> None:
    proc = DashboardProcess(stack_dir, redis_proc.port, workers=2).start()
    try:
        assert proc.token is not None
        assert proc.output().count(proc.token) == 1  # only the login URL line
        bearer = {"Authorization": f"Bearer {proc.token}"}

        def subscriptions(session: requests.Session) -> int:
            return session.get(f"{proc.url}/api/subscriptions", headers=bearer, timeout=10).status_code

        assert set(per_worker(proc.url, subscriptions).values()) == {200}
    finally:
        proc.stop()


def _parent_of(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("redis_setting", ["host and port", "REDIS_URL"])
def test_the_workers_start_without_a_warning(
    stack_dir: Path, redis_proc: Process, redis_setting: str
) -> None:
    # The Gunicorn master must not import redis-py or Flask before gevent patches the workers,
    # or every worker prints a MonkeyPatchWarning at start (REDIS_URL is parsed with redis-py).
    settings = {"REDIS_URL": f"redis://127.0.0.1:{redis_proc.port}/0"} if redis_setting == "REDIS_URL" else {}
    proc = DashboardProcess(stack_dir, redis_proc.port, workers=2, DASHBOARD_TOKEN=TOKEN, **settings).start()
    try:
        output = proc.output()
    finally:
        proc.stop()

    assert "relay (pid" in output
    assert "Warning" not in output, output


def test_a_change_to_a_user_closes_their_sockets_on_every_worker(
    dashboard: DashboardProcess, redis_proc: Process
) -> None:
    """Issue 26: a user made with the real ``mqtt-dashboard users add``, logged in on both workers,
    loses every socket and session at once when an admin changes their role."""
    added = subprocess.run(
        [*DashboardProcess.command(), "users", "add", "nina", "--role", "operator"],
        input="nina's password\n",
        env=dashboard.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    login = requests.post(
        f"{dashboard.url}/api/login",
        json={"username": "nina", "password": "nina's password"},
        headers={"Origin": dashboard.url},
        timeout=10,
    )
    assert login.status_code == 200 and login.json()["user"]["role"] == "operator"
    cookie = f"mqtt_dashboard_session={login.cookies['mqtt_dashboard_session']}"
    sockets: list[socketio.Client] = []
    workers: list[int] = []  # the worker of each socket, from its snapshot
    for _ in range(20):  # until the workers have shared some out
        client = socketio.Client(reconnection=False)
        client.on("snapshot", lambda data: workers.append(data["worker"]))
        client.connect(dashboard.url, transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=10)
        sockets.append(client)
        wait_for(lambda: len(workers) == len(sockets), 10, what="the socket's snapshot")
        if len(set(workers)) == 2 and len(sockets) >= 4:
            break
    assert len(set(workers)) == 2, "nina's sockets all landed on one worker"

    changed = requests.patch(
        f"{dashboard.url}/api/users/nina",
        json={"role": "viewer"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )

    assert changed.status_code == 200
    wait_for(lambda: not any(c.connected for c in sockets), 10, what="every socket of nina's closed")
    old = requests.get(f"{dashboard.url}/api/subscriptions", headers={"Cookie": cookie}, timeout=10)
    assert old.status_code == 401
