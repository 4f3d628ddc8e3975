"""A throwaway Synapse homeserver on the loopback interface.

:class:`Homeserver` generates a Synapse configuration inside a working
directory, adapts it for local, offline use (loopback only, no key servers, no
open registration, relaxed rate limits) and runs Synapse as a child process.
Everything it writes — configuration, signing key, SQLite database, media and
logs — stays inside that directory.

The API is synchronous on purpose: it is used from pytest fixtures, benchmarks
and the ``dorfbot demo`` command, none of which should need an event loop just
to start or stop a server.

Example::

    with Homeserver(Path(tmpdir)) as hs:
        user_id = hs.register("alice", "secret")
        print(hs.url, user_id)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

__all__ = ["Homeserver", "HomeserverError"]

#: Rate limit used for every limiter we relax: effectively unlimited for tests.
_RELAXED = {"per_second": 1000, "burst_count": 1000}

#: Synapse's rate limiters (1.163), as paths into the config. ``rc_message`` is
#: handled separately because ``strict_rate_limits`` keeps its default.
_RELAXED_LIMITERS: tuple[tuple[str, ...], ...] = (
    ("rc_registration",),
    ("rc_registration_token_validity",),
    ("rc_login", "address"),
    ("rc_login", "account"),
    ("rc_login", "failed_attempts"),
    ("rc_admin_redaction",),
    ("rc_joins", "local"),
    ("rc_joins", "remote"),
    ("rc_joins_per_room",),
    ("rc_key_requests",),
    ("rc_3pid_validation",),
    ("rc_invites", "per_room"),
    ("rc_invites", "per_user"),
    ("rc_invites", "per_issuer"),
    ("rc_third_party_invite",),
    ("rc_media_create",),
    ("rc_presence", "per_user"),
    ("rc_delayed_event_mgmt",),
    ("rc_room_creation",),
    ("rc_reports",),
    ("rc_user_directory",),
    ("rc_profile",),
)

_CONFIG_NAME = "homeserver.yaml"
_LOG_CONFIG_NAME = "log.config"
_LOG_NAME = "homeserver.log"
_STDIO_LOG_NAME = "synapse-stdio.log"

# Running homeservers, held strongly so that an unreferenced server is not
# orphaned: whatever still runs when the interpreter exits gets stopped.
_live: set[Homeserver] = set()


def _stop_all() -> None:
    for hs in list(_live):
        with contextlib.suppress(Exception):
            hs.stop()


atexit.register(_stop_all)


class HomeserverError(RuntimeError):
    """Synapse could not be configured, started or talked to."""


def _free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """Whether Synapse (which sets SO_REUSEADDR, like Twisted) could bind ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_chars))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Homeserver:
    """A Synapse homeserver bound to 127.0.0.1, living entirely in ``workdir``.

    Args:
        workdir: Directory for configuration, keys, database and logs. It is
            created if missing. An existing configuration in it is reused, so
            a server can be restarted with its users and rooms intact.
        message_rate: ``(per_second, burst_count)`` for ``rc_message`` instead of
            Synapse's default (implies strict mode for everything else).
        strict_rate_limits: Keep Synapse's default message rate limit
            (``rc_message``) so that tests can provoke HTTP 429. Registration,
            login, joins, invites and room creation stay relaxed either way.
        server_name: The Matrix server name (the part after ``:`` in user IDs).
        log_level: Level for Synapse's log file ``homeserver.log`` in ``workdir``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        strict_rate_limits: bool = False,
        message_rate: tuple[float, int] | None = None,
        server_name: str = "localhost",
        log_level: str = "INFO",
    ) -> None:
        self._workdir = Path(workdir).resolve()
        self._strict_rate_limits = strict_rate_limits or message_rate is not None
        self._message_rate = message_rate
        self._server_name = server_name
        self._log_level = log_level
        self._port: int | None = None
        self._shared_secret: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdio: IO[bytes] | None = None
        self._admin_token: str | None = None

    # -- properties --------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The directory holding everything this homeserver writes."""
        return self._workdir

    @property
    def server_name(self) -> str:
        """The Matrix server name, e.g. ``localhost``."""
        return self._server_name

    @property
    def port(self) -> int:
        """The loopback TCP port of the client API (known after :meth:`start`)."""
        if self._port is None:
            raise HomeserverError("the homeserver has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the client-server API, e.g. ``http://127.0.0.1:8448``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def strict_rate_limits(self) -> bool:
        """Whether Synapse's default message rate limit is in force."""
        return self._strict_rate_limits

    @property
    def running(self) -> bool:
        """Whether the Synapse process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def config_path(self) -> Path:
        """Path of the generated ``homeserver.yaml``."""
        return self._workdir / _CONFIG_NAME

    @property
    def log_path(self) -> Path:
        """Path of Synapse's log file."""
        return self._workdir / _LOG_NAME

    def user_id(self, localpart: str) -> str:
        """Return the full Matrix user ID for ``localpart`` on this server."""
        return f"@{localpart}:{self._server_name}"

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start Synapse and block until its client API answers.

        The first call generates and patches the configuration. Later calls
        (after :meth:`stop`) reuse configuration, port and database. Calling
        it while the server runs does nothing.

        Raises:
            HomeserverError: if Synapse exits or does not answer within
                ``timeout`` seconds; the message ends with the log's tail.
        """
        if self.running:
            return
        self.stop()  # reap a crashed process and close its log file
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._prepare_config()

        stdio_path = self._workdir / _STDIO_LOG_NAME
        self._stdio = stdio_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdio,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.add(self)
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Safe to call repeatedly and on a server that never started.
        """
        proc, self._proc = self._proc, None
        _live.discard(self)
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same port with the same database."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> Homeserver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Homeserver {self._server_name} port={self._port} {state} in {self._workdir}>"

    # -- users -------------------------------------------------------------

    def register(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> str:
        """Create a user with the shared-secret admin API; return its user ID.

        Raises:
            HomeserverError: if Synapse refuses (e.g. the user exists).
        """
        return str(self._register(localpart, password, admin, displayname)["user_id"])

    def admin_api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Call the Synapse admin API (``/_synapse/admin/...``) as a server admin.

        The admin account is created on first use.

        Raises:
            HomeserverError: on an HTTP error.
        """
        if self._admin_token is None:
            localpart = f"harness-admin-{secrets.token_hex(4)}"
            created = self._register(localpart, secrets.token_urlsafe(24), True, None)
            self._admin_token = str(created["access_token"])
        return self._request(method, path, body, token=self._admin_token)

    def exempt_from_rate_limits(self, user_id: str) -> None:
        """Lift the message rate limit (``rc_message``) for one user.

        Useful with ``strict_rate_limits``: the bot under test is throttled,
        the residents that drive the test are not.
        """
        quoted = urllib.parse.quote(user_id, safe="")
        self.admin_api(
            "POST",
            f"/_synapse/admin/v1/users/{quoted}/override_ratelimit",
            {"messages_per_second": 0, "burst_count": 0},
        )

    # -- internals ---------------------------------------------------------

    def _register(
        self, localpart: str, password: str, admin: bool, displayname: str | None
    ) -> dict[str, Any]:
        """Shared-secret registration; returns Synapse's answer (with a token)."""
        secret = self._shared_secret
        if secret is None:
            raise HomeserverError("the homeserver has not been started yet")
        path = "/_synapse/admin/v1/register"
        nonce = self._request("GET", path)["nonce"]
        mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode("utf-8"))
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        return self._request("POST", path, body)

    def _request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                result: dict[str, Any] = json.loads(resp.read())
                return result
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            raise HomeserverError(f"{method} {path} failed: HTTP {err.code}: {detail}") from err
        except urllib.error.URLError as err:
            raise HomeserverError(f"{method} {path} failed: {err.reason}") from err

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # Synapse runs in its own session (start_new_session), so its process
        # group holds it and anything it might spawn, and nothing else.
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _log_tail(self) -> str:
        parts = []
        for name in (_STDIO_LOG_NAME, _LOG_NAME):
            text = _tail(self._workdir / name).strip()
            if text:
                parts.append(f"--- {name} (tail) ---\n{text}")
        return "\n".join(parts) or "(no log output)"

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        versions = self.url + "/_matrix/client/versions"
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise HomeserverError(
                    f"Synapse exited with code {code} during startup\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(versions, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise HomeserverError(
                    f"Synapse did not answer on {versions} within {timeout:.0f} s\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.1)

    def _generate_config(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            self._server_name,
            "--config-path",
            str(self.config_path),
            "--config-directory",
            str(self._workdir),
            "--data-directory",
            str(self._workdir),
            "--generate-config",
            "--report-stats=no",
        ]
        result = subprocess.run(
            cmd,
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 or not self.config_path.exists():
            output = (result.stdout + result.stderr).decode("utf-8", "replace")
            raise HomeserverError(f"generating the Synapse config failed:\n{output}")
        # We write our own log config (see _write_log_config); drop Synapse's.
        (self._workdir / f"{self._server_name}.log.config").unlink(missing_ok=True)

    def _prepare_config(self) -> None:
        """Generate (first time) and patch ``homeserver.yaml``; remember port and secret."""
        fresh = not self.config_path.exists()
        if fresh:
            self._generate_config()
        config = yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}

        if self._port is None:
            port = self._configured_port(config)
            if fresh or port is None or not _port_is_free(port):
                port = _free_loopback_port()
            self._port = port
        elif not _port_is_free(self._port):
            raise HomeserverError(f"port {self._port} on 127.0.0.1 is taken by another process")

        self._patch(config)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self._write_log_config()
        secret = config.get("registration_shared_secret")
        if not isinstance(secret, str) or not secret:
            raise HomeserverError(f"no registration_shared_secret in {self.config_path}")
        self._shared_secret = secret
        if config.get("server_name") != self._server_name:
            self._server_name = str(config["server_name"])

    @staticmethod
    def _configured_port(config: dict[str, Any]) -> int | None:
        for listener in config.get("listeners") or []:
            if listener.get("type") == "http" and isinstance(listener.get("port"), int):
                return int(listener["port"])
        return None

    def _patch(self, config: dict[str, Any]) -> None:
        work = self._workdir
        config["listeners"] = [
            {
                "port": self._port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ]
        config["public_baseurl"] = f"http://127.0.0.1:{self._port}/"
        config["pid_file"] = str(work / "homeserver.pid")
        config["database"] = {"name": "sqlite3", "args": {"database": str(work / "homeserver.db")}}
        config["media_store_path"] = str(work / "media_store")
        config["signing_key_path"] = str(work / f"{config['server_name']}.signing.key")
        config["log_config"] = str(work / _LOG_CONFIG_NAME)
        config["trusted_key_servers"] = []
        config["suppress_key_server_warning"] = True
        config["report_stats"] = False
        config["enable_registration"] = False
        # Cheap password hashing: a throwaway server creates many accounts and
        # the default (12 rounds) costs ~0.25 s per registration and login.
        config["bcrypt_rounds"] = 4

        for path in _RELAXED_LIMITERS:
            node = config
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = dict(_RELAXED)
        if self._message_rate is not None:
            per_second, burst = self._message_rate
            config["rc_message"] = {"per_second": per_second, "burst_count": burst}
        elif self._strict_rate_limits:
            config.pop("rc_message", None)  # Synapse default: 0.2/s, burst 10
        else:
            config["rc_message"] = dict(_RELAXED)

    def _write_log_config(self) -> None:
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                    " - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
            "root": {"level": self._log_level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        path = self._workdir / _LOG_CONFIG_NAME
        path.write_text(yaml.safe_dump(log_config, sort_keys=False), encoding="utf-8")
