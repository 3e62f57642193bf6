"""Alertmanager with logins, as the monitoring role sets it up: the bcrypt_hash filter's
hashes in a real Alertmanager's web configuration (Debian's prometheus-alertmanager). The
anonymous and wrong passwords are refused; the runbook's user reads, makes and expires
silences; a hash made again is the same (the role's converge changes nothing)."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.eventplatform.eventbus.plugins.filter.bcrypt_hash import bcrypt_hash

from tests.harness._net import LOOPBACK, free_port, port_open, wait_until
from tests.harness._process import ServerProcess

ALERTMANAGER = shutil.which("prometheus-alertmanager")
USERS = {
    "eventbus-ops": "Zq3vK8pW1mR7tY2uX9aB4cD6eF0gH5jL",
    "prometheus": "prometheus-password-32-chars-long",
}
SEED = "a-salt-seed-of-the-inventory-0123"

pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None, reason="prometheus-alertmanager is missing: make prerequisites"
)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("alertmanager")
    config = work / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    )
    web = work / "web.yml"
    hashes = {user: bcrypt_hash(password, f"{SEED}:{user}") for user, password in USERS.items()}
    web.write_text(yaml.safe_dump({"basic_auth_users": hashes}))
    port = free_port()
    server = ServerProcess(
        [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={work / 'data'}",
         f"--web.listen-address={LOOPBACK}:{port}", "--cluster.listen-address=",
         f"--web.config.file={web}"],
        work / "alertmanager.log",
    )  # fmt: skip
    server.start()
    try:
        wait_until(lambda: port_open(port), 30, "Alertmanager listening")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.stop()


def call(url: str, user: str | None = None, password: str = "", method: str = "GET",
         body: object = None) -> tuple[int, object]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        )
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, None


def silence(label: str, value: str, created_by: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "matchers": [{"name": label, "value": value, "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
        "createdBy": created_by,
        "comment": "maintenance",
    }


def test_the_anonymous_and_wrong_logins_are_refused(alertmanager: str) -> None:
    for path in ("/api/v2/silences", "/api/v2/alerts", "/-/ready", "/metrics"):
        assert call(alertmanager + path)[0] == 401, path
    assert call(alertmanager + "/api/v2/silences", "eventbus-ops", "wrong")[0] == 401
    assert call(alertmanager + "/api/v2/silences", "nobody", USERS["eventbus-ops"])[0] == 401
    made = silence("instance", "x", "stranger")
    assert call(alertmanager + "/api/v2/silences", method="POST", body=made)[0] == 401
    status, silences = call(
        alertmanager + "/api/v2/silences", "eventbus-ops", USERS["eventbus-ops"]
    )
    assert status == 200
    assert not [s for s in silences if s["createdBy"] == "stranger"]


def test_the_runbook_user_makes_and_expires_a_silence(alertmanager: str) -> None:
    login = ("eventbus-ops", USERS["eventbus-ops"])
    wanted = silence("server", "kafka1001.eqiad.wmnet", "eventbus-ops test")
    status, made = call(alertmanager + "/api/v2/silences", *login, method="POST", body=wanted)
    assert status == 200
    assert isinstance(made, dict)
    silence_id = made["silenceID"]
    assert call(f"{alertmanager}/api/v2/silence/{silence_id}", method="DELETE")[0] == 401
    assert call(f"{alertmanager}/api/v2/silence/{silence_id}", *login, method="DELETE")[0] == 200
    status, seen = call(f"{alertmanager}/api/v2/silence/{silence_id}", *login)
    assert status == 200
    assert isinstance(seen, dict)
    assert seen["status"]["state"] == "expired"
    # Prometheus' own user may post alerts
    alert = [{"labels": {"alertname": "Test", "instance": "kafka1001:8085"}}]
    assert (
        call(alertmanager + "/api/v2/alerts", "prometheus", USERS["prometheus"], "POST", alert)[0]
        == 200
    )
    assert call(alertmanager + "/api/v2/alerts", method="POST", body=alert)[0] == 401


def test_a_hash_is_the_same_on_every_run_and_verifies() -> None:
    first = bcrypt_hash(USERS["eventbus-ops"], f"{SEED}:eventbus-ops")
    assert first == bcrypt_hash(USERS["eventbus-ops"], f"{SEED}:eventbus-ops")
    assert first.startswith("$2b$10$")
    assert bcrypt.checkpw(USERS["eventbus-ops"].encode(), first.encode())
    assert not bcrypt.checkpw(b"another password", first.encode())
    other_salt = bcrypt_hash(USERS["eventbus-ops"], f"{SEED}:prometheus")
    assert other_salt != first  # each user its own salt
    assert bcrypt.checkpw(USERS["eventbus-ops"].encode(), other_salt.encode())


@pytest.mark.parametrize(
    ("password", "seed", "rounds", "message"),
    [
        ("", SEED, 10, "non-empty password"),
        (None, SEED, 10, "non-empty password"),
        ("x" * 73, SEED, 10, "at most 72 bytes"),
        ("pw", "short", 10, "at least 16"),
        ("pw", SEED, 3, "rounds are 4 to 31"),
    ],
)
def test_bad_inputs_are_clear_errors(
    password: object, seed: str, rounds: int, message: str
) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        bcrypt_hash(password, seed, rounds)
