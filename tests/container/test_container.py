"""The container image as users run it (``make container-check`` builds it and
runs these; elsewhere they are skipped): with podman, non-root, read-only, all
capabilities dropped; the demo inside it; against Cyrus 3.6 on the host's
loopback a label triaged, the health check, SIGTERM, a restart that keeps the
ledger; and the compose example brought up and down with the same checks.

Outcomes are read from the account (Cyrus), the ledger (``history`` inside
the container) and the engine's own view (user, health, exit code)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from mailroom.sandbox.mailmodel import ACCOUNT_ID
from mailroom.web.auth import hash_password
from tests.integration.cyrus import Cyrus
from tests.process import wait_until

IMAGE = os.environ.get("MAILROOM_CONTAINER_IMAGE", "")
ROOT = Path(__file__).resolve().parents[2]
# Modest limits: podman's defaults ask for more than some hosts grant.
LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
HARDENED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", *LIMITS)

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(not IMAGE, reason="make container-check builds the image and runs these"),
]


def podman(
    *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_image_runs_as_its_own_user_and_says_its_version() -> None:
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert image["Healthcheck"]["Test"] == ["CMD", "mailroom", "status", "--healthcheck"]
    assert "/var/lib/mailroom" in config["Volumes"]
    ids = podman("run", "--rm", *HARDENED, IMAGE, "id", "-u").stdout.strip()
    assert ids == "10001"
    version = podman("run", "--rm", *HARDENED, IMAGE, "mailroom", "--version").stdout
    assert version.startswith("mailroom ")
    # No curl, no shell tools to lean on: the health check is the program itself.
    which = "import shutil; print(shutil.which('curl') or 'none')"
    assert podman("run", "--rm", *HARDENED, IMAGE, "python3", "-c", which).stdout == "none\n"


def test_the_demo_inside_the_container_triages_everyone() -> None:
    done = podman(
        "run",
        "--rm",
        *HARDENED,
        "--tmpfs",
        "/tmp",
        IMAGE,
        "mailroom",
        "demo",
        "--pause",
        "0.2",
        "--debounce",
        "0.5",
        "--poll-interval",
        "5",
        timeout=240,
    )
    assert "demo | done: 7/7 senders triaged" in done.stdout, done.stdout[-2000:]


def write_secrets(folder: Path, cyrus: Cyrus) -> Path:
    """The secrets as files, readable by the container's user only."""
    folder.mkdir()
    env = cyrus.mailroom_env()
    files = {
        "jmap-token": env["MAILROOM_JMAP_TOKEN"],
        "web-password": hash_password("correct horse battery staple"),
    }
    if "MAILROOM_CARDDAV_PASSWORD" in env:
        files["carddav-password"] = env["MAILROOM_CARDDAV_PASSWORD"]
    for name, value in files.items():
        path = folder / name
        path.write_text(value + "\n")
        os.chown(path, 10001, 10001)
        path.chmod(0o400)
    return folder


def settings(cyrus: Cyrus, port: int) -> dict[str, str]:
    """Cyrus's settings for the container: its secrets as files, not values."""
    env = cyrus.mailroom_env(
        MAILROOM_HTTP_HOST="127.0.0.1",  # the host's network: stay on its loopback
        MAILROOM_HTTP_PORT=str(port),
        MAILROOM_DEBOUNCE_SECONDS="1",
        MAILROOM_JMAP_TOKEN_FILE="/run/secrets/jmap-token",
        MAILROOM_WEB_PASSWORD_FILE="/run/secrets/web-password",
    )
    if env.pop("MAILROOM_CARDDAV_PASSWORD", None) is not None:
        env["MAILROOM_CARDDAV_PASSWORD_FILE"] = "/run/secrets/carddav-password"
    for name in ("MAILROOM_JMAP_TOKEN", "MAILROOM_STATE_DIR"):
        env.pop(name)
    return env


def health(name: str) -> str:
    return podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()


def triaged_then_kept(
    name: str,
    start: list[str],
    port: int,
    label: Callable[[], None],
    filed: Callable[[], bool],
    cwd: Path | None = None,
) -> None:
    """The checks both ways of running share: a label triaged (``label`` puts
    it on, ``filed`` says the mail is where it belongs), the health check
    healthy, SIGTERM honoured, the decision still in the ledger after a restart."""
    done = subprocess.run(start, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    def logs() -> str:
        return podman("logs", name, check=False).stderr[-3000:]

    assert wait_until(lambda: _serves(port), 90, 0.2), logs()
    label()
    assert wait_until(filed, 60, 0.3), logs()
    assert podman("healthcheck", "run", name, check=False).returncode == 0, logs()
    assert health(name) == "healthy"
    podman("stop", "--time", "5", name)
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state  # stopped by SIGTERM, not killed
    podman("start", name)
    assert wait_until(lambda: _serves(port), 90, 0.2), logs()
    history = podman("exec", name, "mailroom", "history").stdout
    assert "Feed  push  done" in history, history  # the decision, kept in the volume


def _serves(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def container() -> Iterator[str]:
    name = f"mailroom-check-{uuid.uuid4().hex[:8]}"
    yield name
    podman("rm", "--force", "--volumes", name, check=False)
    podman("volume", "rm", "--force", f"{name}-state", check=False)


def test_against_cyrus_on_the_host(cyrus: Cyrus, container: str, tmp_path: Path) -> None:
    cyrus.ensure_mailbox("Screener")
    port = free_port()
    env = settings(cyrus, port)
    flags = [f"--env={k}={v}" for k, v in env.items()]
    base = ["podman", "run", "--rm", "--network=host", *HARDENED, *flags]
    mounts = [
        f"--volume={write_secrets(tmp_path / 'secrets', cyrus)}:/run/secrets:ro",
        f"--volume={container}-state:/var/lib/mailroom",
    ]
    setup = [*base, *mounts, IMAGE, "mailroom", "setup", "--apply"]
    done = subprocess.run(setup, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    start = [
        "podman", "run", "--detach", f"--name={container}", "--network=host",
        *HARDENED, *flags, *mounts, IMAGE,
    ]  # fmt: skip
    sender = f"news-{uuid.uuid4().hex[:8]}@container.example"
    cyrus.deliver(sender, "Container News", "Hello from outside")
    (email,) = cyrus.wait_for_mail(sender, 1)
    triaged_then_kept(
        container,
        start,
        port,
        lambda: cyrus.label(email, "@ToFeed"),
        lambda: cyrus.emails_from(sender)[email] == {"Feed"},
    )


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """The compose example in a folder of its own, with the secrets beside it."""
    folder = tmp_path / "compose"
    folder.mkdir()
    yield folder
    subprocess.run([*COMPOSE, "down", "--volumes"], cwd=folder, capture_output=True, timeout=180)


COMPOSE = ["podman-compose", "-f", "compose.yaml", "-f", "compose.override.yaml"]


class StandIn:
    """The stand-in as the compose project's second service, seen from the host
    through its published port (its URLs are relative: the ``rfc`` flavour)."""

    def __init__(self, port: int, ca: Path) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=f"https://127.0.0.1:{port}",
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=10,
            verify=ssl.create_default_context(cafile=str(ca)),
        )

    def call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        body = {
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [[method, {"accountId": ACCOUNT_ID, **args}, "c"]],
        }
        resp = self.http.post("/jmap/api/", json=body)
        resp.raise_for_status()
        return dict(resp.json()["methodResponses"][0][1])

    def up(self) -> bool:
        try:
            return self.http.get("/jmap/session").status_code == 200
        except Exception:
            return False

    def boxes(self) -> dict[str, str]:
        return {m["name"]: m["id"] for m in self.call("Mailbox/get", {"ids": None})["list"]}

    def mailboxes_of(self, email: str) -> set[str]:
        names = {v: k for k, v in self.boxes().items()}
        (got,) = self.call("Email/get", {"ids": [email], "properties": ["mailboxIds"]})["list"]
        return {names[m] for m in got["mailboxIds"]}

    def first_waiting(self) -> str:
        screener = self.boxes()["Screener"]
        ids = self.call("Email/query", {"filter": {"inMailbox": screener}, "limit": 1})["ids"]
        return str(ids[0])

    def label(self, email: str, name: str) -> None:
        patch = {f"mailboxIds/{self.boxes()[name]}": True}
        assert email in (self.call("Email/set", {"update": {email: patch}}).get("updated") or {})


def test_the_compose_example_up_and_down(project: Path) -> None:
    """The example as shipped, beside a stand-in service of its own (podman-compose
    1.0 gives every service a bridge network, so Cyrus on the host's loopback is
    out of its reach): the port moved to a free one, the image built already."""
    port, sandbox_port = free_port(), free_port()
    example = (ROOT / "compose.yaml").read_text()
    build = "    build:\n      context: .\n      dockerfile: Containerfile\n"
    published = '"127.0.0.1:8080:8080"'
    assert build in example and published in example
    example = example.replace(build, "").replace(published, f'"127.0.0.1:{port}:8080"')
    (project / "compose.yaml").write_text(example)
    # Mailroom refuses plain http beyond loopback, so the stand-in serves HTTPS
    # with a certificate of a CA the service is told to trust (SSL_CERT_FILE).
    ca = trustme.CA()
    issued = ca.issue_cert("sandbox", "127.0.0.1")
    secrets = project / "secrets"
    secrets.mkdir()
    for name, value in (
        ("jmap-token", "sandbox-token\n"),
        ("web-password", hash_password("correct horse battery staple") + "\n"),
        ("sandbox-ca", ca.cert_pem.bytes().decode()),
        ("sandbox-cert", "".join(b.bytes().decode() for b in issued.cert_chain_pems)),
        ("sandbox-key", issued.private_key_pem.bytes().decode()),
    ):
        (secrets / name).write_text(value)
        os.chown(secrets / name, 10001, 10001)
        (secrets / name).chmod(0o400)
    override = {
        "services": {
            "sandbox": {
                "image": IMAGE,
                "command": [
                    # all of its container's addresses: the project's network only
                    "mailroom", "sandbox", "--host", "0.0.0.0", "--port", "8765",  # noqa: S104
                    "--seed", "--certificate", "/run/secrets/sandbox-cert",
                    "--key", "/run/secrets/sandbox-key", "--public-url", "https://sandbox:8765",
                ],
                "secrets": ["sandbox-cert", "sandbox-key"],
                "tmpfs": ["/var/lib/mailroom"],  # its state is in memory: no volume
                "ports": [f"127.0.0.1:{sandbox_port}:8765"],
                "healthcheck": {"test": "exit 0"},
                "ulimits": {"nofile": 4096, "nproc": 4096},
            },
            "mailroom": {
                "image": IMAGE,
                "depends_on": ["sandbox"],
                "secrets": ["sandbox-ca"],
                "environment": {
                    "MAILROOM_JMAP_SESSION_URL": "https://sandbox:8765/jmap/session",
                    "MAILROOM_CONTACTS": "jmap",
                    "MAILROOM_DEBOUNCE_SECONDS": "1",
                    "SSL_CERT_FILE": "/run/secrets/sandbox-ca",
                },
                "ulimits": {"nofile": 4096, "nproc": 4096},
            },
        },
        "secrets": {
            name: {"file": f"./secrets/{name}"}
            for name in ("sandbox-ca", "sandbox-cert", "sandbox-key")
        },
    }  # fmt: skip
    (project / "compose.override.yaml").write_text(json.dumps(override))
    stand_in = StandIn(sandbox_port, secrets / "sandbox-ca")
    started = subprocess.run(
        [*COMPOSE, "up", "--detach", "--no-build", "sandbox"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert wait_until(stand_in.up, 60, 0.2)
    setup = subprocess.run(
        [*COMPOSE, "run", "--rm", "--no-deps", "mailroom", "mailroom", "setup", "--apply"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    email = stand_in.first_waiting()
    name = "compose_mailroom_1"
    triaged_then_kept(
        name,
        [*COMPOSE, "up", "--detach", "--no-build"],
        port,
        lambda: stand_in.label(email, "@ToFeed"),
        lambda: stand_in.mailboxes_of(email) == {"Feed"},
        cwd=project,
    )
    config = json.loads(podman("inspect", name).stdout)[0]
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert config["HostConfig"]["CapDrop"]  # every capability dropped
    down = subprocess.run(
        [*COMPOSE, "down"], cwd=project, capture_output=True, text=True, timeout=180, check=False
    )
    assert down.returncode == 0, down.stderr
    assert podman("container", "exists", name, check=False).returncode == 1
