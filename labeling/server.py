"""Our own Label Studio: its virtual environment, start and stop, and the API token.

Label Studio 1.23 needs numpy 2, which our face models cannot live with, so the server runs from
its own venv (`.venv-labelstudio`). It listens on 127.0.0.1 only, keeps its data under
`data/labelstudio/`, and serves through its local-files storage only the folder push fills with
the images of pushed faces (`data/labelstudio/files/`, see `labeling.served`), never the blob
store. Legacy API tokens are off for new organisations in 1.23: at first start we create the
admin account, sign in and ask for a personal access token. The token and the generated admin
password go into `connection.json`, readable only by its owner; the password reaches Label
Studio through its environment, never its command line (which every user can read).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from labeling import served
from likeness.config import Settings
from likeness.errors import ConfigError, ServiceUnavailable
from likeness.files import write_text_atomic

log = logging.getLogger(__name__)

LABEL_STUDIO_VERSION = "1.23.2"
ADMIN_EMAIL = "admin@likeness.local"
CONNECTION_FILE = "connection.json"
READY_MARKER = ".likeness-ready"
START_TIMEOUT_S = 300.0


@dataclass
class Connection:
    """Where a Label Studio answers and the token we use there."""

    url: str
    token: str
    pid: int | None = None          # only for the server we started
    admin_email: str | None = None
    admin_password: str | None = None
    files_root: str | None = None   # the document root the server we started serves


def connection_path(settings: Settings) -> Path:
    return settings.label_studio_dir / CONNECTION_FILE


def read_connection(settings: Settings) -> Connection | None:
    path = connection_path(settings)
    if not path.is_file():
        return None
    try:
        return Connection(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a connection file ({exc})", hint="delete it and run `likeness label serve`") from exc


def write_connection(settings: Settings, connection: Connection) -> None:
    """Write atomically, owner-only: the file holds the admin password and the token."""
    path = connection_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(path, json.dumps(asdict(connection), indent=2), mode=0o600)


def resolve_connection(settings: Settings) -> Connection:
    """The configured Label Studio (LIKENESS_LABEL_STUDIO_URL + _TOKEN) or the one we serve."""
    if settings.label_studio_url:
        if not settings.label_studio_token:
            raise ConfigError("LIKENESS_LABEL_STUDIO_URL is set but LIKENESS_LABEL_STUDIO_TOKEN is not",
                              hint="copy a token from Label Studio's Account & Settings page")
        return Connection(url=settings.label_studio_url.rstrip("/"), token=settings.label_studio_token)
    connection = read_connection(settings)
    if connection is None or not connection.token:
        raise ConfigError("no Label Studio is configured",
                          hint="run `likeness label serve`, or set LIKENESS_LABEL_STUDIO_URL and LIKENESS_LABEL_STUDIO_TOKEN")
    return connection


# -- the virtual environment -------------------------------------------------------------------

def label_studio_executable(settings: Settings) -> Path:
    return settings.label_studio_venv.resolve() / "bin" / "label-studio"


def ensure_venv(settings: Settings, *, python: str | None = None) -> Path:
    """Create the server's venv unless a finished one is there; returns the `label-studio` path.

    A venv without our marker is a half-finished install (killed pip): it is rebuilt.
    """
    venv = settings.label_studio_venv.resolve()
    executable = label_studio_executable(settings)
    if (venv / READY_MARKER).is_file() and executable.is_file():
        return executable
    if venv.exists():
        log.warning("rebuilding %s: an earlier install did not finish", venv)
        shutil.rmtree(venv)
    interpreter = python or shutil.which("python3.11") or sys.executable
    log.info("creating %s with label-studio==%s (about a minute)", venv, LABEL_STUDIO_VERSION)
    try:
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        f"label-studio=={LABEL_STUDIO_VERSION}"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
        raise ServiceUnavailable(f"could not install Label Studio into {venv}: " + " | ".join(tail),
                                 hint="check the connection to the package index") from exc
    (venv / READY_MARKER).write_text(LABEL_STUDIO_VERSION + "\n")
    return executable


# -- start, stop, status -----------------------------------------------------------------------

def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child) still answers signal 0; ask the kernel for its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


FILES_DIR = "files"
# Label Studio reads its admin account from these (LABEL_STUDIO_ first, then HEARTEX_, then bare).
_ACCOUNT_VARIABLES = [prefix + name for prefix in ("LABEL_STUDIO_", "HEARTEX_", "") for name in ("USERNAME", "PASSWORD")]


def files_root(settings: Settings) -> Path:
    """The server's LOCAL_FILES_DOCUMENT_ROOT as seen from here: the folder of served images
    (`data/labelstudio/files/` for our own server, LIKENESS_LABEL_STUDIO_FILES_ROOT for another)."""
    return (settings.label_studio_files_root or settings.label_studio_dir / FILES_DIR).resolve()


def start(settings: Settings, blob_root: str | None = None, *, wait_s: float = START_TIMEOUT_S) -> Connection:
    """Start our Label Studio (creating its venv, admin and token the first time) and wait for it.

    Starting one that already answers is a no-op, unless it serves another document root than
    ours (a server started before the served folder existed): that one is restarted. `blob_root`,
    when given, is checked to lie apart from the served folder. Returns the connection to use.
    """
    if settings.label_studio_url:
        raise ConfigError("LIKENESS_LABEL_STUDIO_URL points at another Label Studio; `serve` starts our own",
                          hint="unset LIKENESS_LABEL_STUDIO_URL to use the built-in server")
    root = files_root(settings)
    if blob_root is not None:
        served.check_apart(root, blob_root)
    existing = read_connection(settings)
    if existing is not None and _alive(existing.pid) and healthy(existing.url):
        if existing.files_root == str(root):
            return existing
        log.info("restarting Label Studio to serve %s only", root)
        stop(settings)
        existing = read_connection(settings)
    executable = ensure_venv(settings)
    home = settings.label_studio_dir
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = f"http://127.0.0.1:{settings.label_studio_port}"
    if healthy(url):
        raise ServiceUnavailable(f"port {settings.label_studio_port} already answers as a Label Studio we did not start",
                                 hint="stop it or set LIKENESS_LABEL_STUDIO_PORT")
    first_start = existing is None or not existing.token
    password = (existing.admin_password if existing and existing.admin_password else secrets.token_urlsafe(18))
    command = [str(executable), "start", "--no-browser", "--data-dir", str(home / "data"),
               "--internal-host", "127.0.0.1", "--port", str(settings.label_studio_port),
               "--log-level", "WARNING"]
    served.prepare(root)
    env = {key: value for key, value in os.environ.items() if key not in _ACCOUNT_VARIABLES}
    if first_start:
        # Through the environment (readable by its owner only), not the command line.
        env |= {"LABEL_STUDIO_USERNAME": ADMIN_EMAIL, "LABEL_STUDIO_PASSWORD": password}
    env |= {"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "COLLECT_ANALYTICS": "false"}
    log_file = open(home / "server.log", "ab")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True, cwd=home)
    log_file.close()
    connection = Connection(url=url, token=existing.token if existing else "", pid=process.pid,
                            admin_email=ADMIN_EMAIL, admin_password=password, files_root=str(root))
    write_connection(settings, connection)
    _wait_healthy(url, process, home / "server.log", wait_s)
    if first_start:
        connection.token = issue_token(url, ADMIN_EMAIL, password)
        write_connection(settings, connection)
    return connection


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-8:]
            raise ServiceUnavailable(f"Label Studio exited with code {process.returncode}: " + " | ".join(tail),
                                     hint=f"see {log_path}")
        if healthy(url):
            return
        time.sleep(0.5)
    raise ServiceUnavailable(f"Label Studio did not answer {url}/health within {wait_s:.0f} s", hint=f"see {log_path}")


def issue_token(url: str, email: str, password: str) -> str:
    """Sign in as `email` and create its personal access token (one per user in 1.23)."""
    http = requests.Session()
    http.get(f"{url}/user/login/", timeout=30)
    response = http.post(f"{url}/user/login/", timeout=30, allow_redirects=False,
                         data={"email": email, "password": password,
                               "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")},
                         headers={"Referer": f"{url}/user/login/"})
    if response.status_code != 302:
        raise ServiceUnavailable(f"could not sign in to Label Studio at {url} as {email} (HTTP {response.status_code})")
    csrf = http.cookies.get("csrftoken") or ""  # requests types a cookie's value as optional
    response = http.post(f"{url}/api/token/", json={}, timeout=30,
                         headers={"X-CSRFToken": csrf, "Referer": url})
    if response.status_code == 409:
        raise ConfigError(f"{email} already holds a token at {url} and ours is lost",
                          hint="revoke it in Label Studio (Account & Settings → Personal Access Token) and run serve again")
    response.raise_for_status()
    return response.json()["token"]


def stop(settings: Settings, *, timeout_s: float = 20.0) -> bool:
    """Stop the server we started; False when none was running."""
    connection = read_connection(settings)
    if connection is None or not _alive(connection.pid):
        return False
    assert connection.pid is not None
    try:
        os.killpg(connection.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while _alive(connection.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(connection.pid):
        os.killpg(connection.pid, signal.SIGKILL)
    connection.pid = None
    write_connection(settings, connection)
    return True


@dataclass
class ServerStatus:
    url: str | None
    source: str            # "configured", "served" or "none"
    running: bool
    pid: int | None
    data_dir: Path | None


def status(settings: Settings) -> ServerStatus:
    if settings.label_studio_url:
        url = settings.label_studio_url.rstrip("/")
        return ServerStatus(url, "configured", healthy(url), None, None)
    connection = read_connection(settings)
    if connection is None:
        return ServerStatus(None, "none", False, None, None)
    running = _alive(connection.pid) and healthy(connection.url)
    return ServerStatus(connection.url, "served", running, connection.pid if running else None,
                        settings.label_studio_dir / "data")
