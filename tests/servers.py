"""Real servers for the test suite: a throwaway PostgreSQL cluster and JupyterLab.

Each helper starts its server on loopback, on a free port, with all of its state in a
fresh temporary directory, and stops exactly the process it started (never anything
found by name). Fixtures here are plain pytest fixtures; make them visible to a test
module (or a conftest) by binding them there::

    from tests import servers

    postgres_url = servers.postgres_url
    postgres_db_url = servers.postgres_db_url

or for the whole suite with ``pytest_plugins = ["tests.servers"]`` in the root conftest.

PostgreSQL:
    ``postgres_url`` (session) starts one cluster per test session and yields the
    SQLAlchemy URL of an empty ``engagelab_test`` database on it.
    ``postgres_db_url`` (function) yields the URL of a brand-new empty database on
    that server, so tests do not see each other's tables; it is dropped afterwards.
    ``fresh_database(url)`` does the same by hand.

    If ``ENGAGELAB_TEST_PG_URL`` is set (an SQLAlchemy URL of a server where the user
    may create databases), that server is used instead of starting one. If neither is
    available, the fixture fails (it never skips) and says to run ``make system-deps``.

JupyterLab:
    ``start_jupyterlab(root_dir)`` starts ``jupyter lab`` from this virtualenv with an
    isolated HOME / config / data / runtime directory and returns a
    :class:`JupyterLabServer`; the browser tests in ``tests/e2e`` wrap it in a fixture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SYSTEM_DEPS_HINT = "run `make system-deps` (or `sudo bash .ci/system-deps.sh`) to apt-install it"
PG_USER = "postgres"
PG_TEST_DB = "engagelab_test"
PG_URL_ENV = "ENGAGELAB_TEST_PG_URL"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# --------------------------------------------------------------------------- PostgreSQL


def find_postgres_bindir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl.

    ``ENGAGELAB_PG_BINDIR`` overrides the search (e.g. a Homebrew or source build).
    """
    override = os.environ.get("ENGAGELAB_PG_BINDIR")
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")

    def major(path: str) -> float:
        with contextlib.suppress(ValueError):
            return float(Path(path).parent.name)
        return 0.0

    for cand in sorted(candidates, key=major, reverse=True):
        bindir = Path(cand)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


@dataclasses.dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster started by :func:`start_postgres`."""

    bindir: Path
    base_dir: Path
    port: int
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, database: str = PG_TEST_DB) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def postmaster_pid(self) -> int | None:
        """PID of this cluster's postmaster, read from its own ``postmaster.pid``."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop this cluster (``pg_ctl stop -m fast``) and delete its directory."""
        if self.data_dir.exists() and self.postmaster_pid() is not None:
            cmd = [
                str(self.bindir / "pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
            ]
            res = _run_pg(cmd, self.run_as, check=False)
            pid = self.postmaster_pid()
            if res.returncode != 0 and pid is not None:
                # pg_ctl could not stop it: signal that one postmaster directly.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _run_pg(
    cmd: list[str], run_as: str | None, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        cmd = ["runuser", "-u", run_as, "--", *cmd]
    # LC_ALL=C keeps initdb away from locales the machine may not have generated.
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}{res.stderr}")
    return res


def start_postgres(bindir: Path | None = None, *, attempts: int = 3) -> PostgresServer:
    """Initialise and start a throwaway cluster on 127.0.0.1, with ``engagelab_test`` created.

    As root the binaries run as the ``postgres`` OS user (PostgreSQL refuses to run as
    root) through ``runuser``; the temporary directory is chowned to that user.
    Durability is switched off (``fsync=off``): the data is thrown away anyway.

    Raises:
        RuntimeError: binaries are missing, or the server does not start.
    """
    bindir = bindir or find_postgres_bindir()
    if bindir is None:
        raise RuntimeError(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin; {SYSTEM_DEPS_HINT}"
        )
    run_as: str | None = None
    # Not under pytest's tmp_path: that is mode 0700 and the postgres user could not enter it.
    base = Path(tempfile.mkdtemp(prefix="engagelab-pg-"))
    if os.geteuid() == 0:
        run_as = PG_USER
        try:
            user = pwd.getpwnam(PG_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(
                f"running as root but there is no {PG_USER!r} OS user to run PostgreSQL as; {SYSTEM_DEPS_HINT}"
            ) from None
        os.chown(base, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir=bindir, base_dir=base, port=0, run_as=run_as)
    try:
        _run_pg(
            [
                str(bindir / "initdb"),
                "-D",
                str(server.data_dir),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
        )
        for attempt in range(attempts):
            server.port = free_port()
            opts = f"-h 127.0.0.1 -p {server.port} -k {base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            cmd = [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(server.data_dir),
                "-l",
                str(server.log_path),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
            ]
            res = _run_pg(cmd, run_as, check=False)
            if res.returncode == 0:
                break
            if attempt == attempts - 1:  # e.g. the port was taken in between
                raise RuntimeError(
                    f"pg_ctl start failed ({res.returncode}): {res.stderr.strip()}\n{_tail(server.log_path)}"
                )
        _admin_execute(server.url("postgres"), f'CREATE DATABASE "{PG_TEST_DB}"')
    except BaseException:
        server.stop()
        raise
    return server


def _admin_execute(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def fresh_database(url: str, prefix: str = "engagelab_t") -> str:
    """Create a new, empty database on the server of ``url`` and return its URL.

    Args:
        url: SQLAlchemy URL of any database on a server where the user may
            ``CREATE DATABASE``.
        prefix: Start of the new database's name; a random suffix follows.

    Returns:
        ``url`` with the database part replaced by the new database's name.
    """
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin_execute(url, f'CREATE DATABASE "{name}"')
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database named in ``url``, disconnecting anyone still using it."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    _admin_execute(admin, f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty ``engagelab_test`` database on a real PostgreSQL server."""
    external = os.environ.get(PG_URL_ENV)
    if external:
        url = fresh_database(external, prefix=PG_TEST_DB)
        yield url
        drop_database(url)
        return
    if find_postgres_bindir() is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
            f"{SYSTEM_DEPS_HINT}, or set {PG_URL_ENV} to a server URL.",
            pytrace=False,
        )
    server = start_postgres()
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """URL of a brand-new empty database for one test; dropped after the test."""
    url = fresh_database(postgres_url)
    yield url
    drop_database(url)


# --------------------------------------------------------------------------- JupyterLab

# Lab settings for tests: no news/update toasts over the notebook, and every cell
# rendered (windowing would leave off-screen widgets out of the DOM).
_LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclasses.dataclass
class JupyterLabServer:
    """A ``jupyter lab`` process started by :func:`start_jupyterlab`."""

    url: str
    port: int
    root_dir: Path
    state_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.state_dir / "jupyterlab.log"

    def stop(self, *, keep_state: bool = False) -> None:
        """Stop this server's process (and the kernels it started) and delete its state.

        Args:
            keep_state: Leave :attr:`state_dir` (HOME, config, runtime, log) on disk.
        """
        if self.process.poll() is None:
            # SIGTERM is Jupyter's graceful stop: it shuts its kernels down, then exits.
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _wait_for_status(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {proc.returncode} before serving:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}api/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"jupyter lab did not answer {url}api/status within {timeout:.0f}s:\n{_tail(log)}"
    )


def start_jupyterlab(
    root_dir: Path, *, timeout: float = 60.0, attempts: int = 2
) -> JupyterLabServer:
    """Start JupyterLab (this venv's) on 127.0.0.1 serving ``root_dir``, without auth.

    HOME, JUPYTER_CONFIG_DIR, JUPYTER_DATA_DIR, JUPYTER_RUNTIME_DIR and IPYTHONDIR
    point into a fresh temporary directory; a ``python3`` kernelspec for this
    interpreter (so kernels can import engagelab) is installed there.
    """
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        raise RuntimeError(f"{jupyter} not found: install the dev extra (`make setup`)")
    state = Path(tempfile.mkdtemp(prefix="engagelab-lab-"))
    dirs = {name: state / name for name in ("home", "config", "data", "runtime", "ipython")}
    for d in dirs.values():
        d.mkdir()
    env = {
        **os.environ,
        "HOME": str(dirs["home"]),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("JUPYTER_PATH", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(dirs["data"].parent / "prefix"),
            "--name",
            "python3",
            "--display-name",
            "Python 3 (ipykernel)",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    # ipykernel install --prefix P writes P/share/jupyter/kernels/python3; make it the data dir's.
    shutil.copytree(state / "prefix" / "share" / "jupyter" / "kernels", dirs["data"] / "kernels")
    settings_dir = dirs["config"] / "lab" / "user-settings"
    for rel, values in _LAB_USER_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    log_path = state / "jupyterlab.log"
    for attempt in range(attempts):
        port = free_port()
        cmd = [
            str(jupyter),
            "lab",
            "--no-browser",
            "--port",
            str(port),
            "--ip",
            "127.0.0.1",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--allow-root",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root_dir}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        log = log_path.open("ab")
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=root_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        url = f"http://127.0.0.1:{port}/"
        server = JupyterLabServer(
            url=url, port=port, root_dir=root_dir, state_dir=state, process=proc
        )
        try:
            _wait_for_status(url, proc, log_path, timeout)
            return server
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if attempt == attempts - 1:
                shutil.rmtree(state, ignore_errors=True)
                raise
    raise AssertionError("unreachable")
