"""``worker --detach --pidfile F --logfile L``: running as a daemon, as ``celery multi`` starts it.

- ``--pidfile``: the running worker writes its process id there. A pidfile that names a live
  process stops the start (two workers of one name would share it); a stale one (its process
  is gone) is replaced. The worker removes it when it exits cleanly.
- ``--logfile``: the process's output (logging, ``print``, the pool children's) goes to the
  file, appended, also without ``--detach``.
- ``--detach``: the classic double fork. The command returns at once; the worker runs in a new
  session with no terminal, stdin from ``/dev/null``, in the same directory (``--workdir``
  changes it).
- ``--uid`` / ``--gid`` (names or numbers): the worker drops to that user and group once its
  log and pidfile are open, so a worker started by root (an init script) does not run tasks
  as root. ``--umask`` (octal, ``0o22`` or ``022``) applies from the start.
- ``--executable``: accepted, and one line says it is not used: the detached worker is this
  same process, forked, not a new program started by name.

Names take Celery's placeholders: ``%n`` the node's name (``w1`` of ``w1@host``), ``%h`` the
whole node name, ``%d`` the host's domain, ``%i`` / ``%I`` the pool child's index (empty here:
every process of the worker writes to one file).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import grp
import logging
import os
import pwd
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from celeriac.exceptions import ConfigurationError
from celeriac.worker.options import format_hostname

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("celeriac.worker")


@dataclass(frozen=True)
class DaemonOptions:
    """What ``worker`` was asked to do about its process."""

    detach: bool = False
    pidfile: str | None = None
    logfile: str | None = None
    workdir: str | None = None
    uid: str | None = None
    gid: str | None = None
    umask: str | None = None
    executable: str | None = None


def with_settings(options: DaemonOptions, conf: Any) -> DaemonOptions:
    """``options``, with what the command line left out taken from the settings
    ``worker_logfile``, ``worker_pidfile``, ``worker_uid``, ``worker_gid``, ``worker_umask``
    and ``worker_executable``, as Celery's worker takes them."""
    given: dict[str, Any] = {}
    for name in ("logfile", "pidfile", "uid", "gid", "umask", "executable"):
        value = getattr(conf, f"worker_{name}", None)
        if getattr(options, name) is None and value is not None:
            given[name] = oct(value) if name == "umask" and isinstance(value, int) else str(value)
    return dataclasses.replace(options, **given) if given else options


def _umask(value: str) -> int:
    try:
        return int(value.removeprefix("0o"), 8)
    except ValueError:
        raise ConfigurationError(f"--umask {value!r} is not an octal number (022, say)") from None


def _user(value: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except KeyError:
        raise ConfigurationError(f"--uid {value!r}: no such user") from None


def _group(value: str) -> int:
    try:
        return int(value) if value.isdigit() else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ConfigurationError(f"--gid {value!r}: no such group") from None


def _drop_privileges(uid: str | None, gid: str | None) -> None:
    """Become ``uid`` (and ``gid``, else that user's own group): the group first, while this
    process may still change it, and the supplementary groups with it."""
    if uid is None and gid is None:
        return
    user = _user(uid) if uid is not None else None
    group = _group(gid) if gid is not None else (user.pw_gid if user else None)
    try:
        if group is not None:
            if user is not None:
                os.initgroups(user.pw_name, group)
            else:
                os.setgroups([group])
            os.setgid(group)
        if user is not None:
            os.setuid(user.pw_uid)
    except PermissionError as exc:
        raise ConfigurationError(f"cannot switch to --uid/--gid: {exc}") from exc


def expand(pattern: str, nodename: str) -> str:
    """``pattern`` with Celery's node placeholders filled in; see the module docstring."""
    name, _, host = nodename.partition("@")
    domain = host.partition(".")[2]
    for key, value in (("%n", name), ("%h", nodename), ("%d", domain), ("%I", ""), ("%i", "")):
        pattern = pattern.replace(key, value)
    return pattern


def pid_alive(pid: int) -> bool:
    """True when a process with that id exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive all the same
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def read_pid(path: Path) -> int | None:
    """The process id in a pidfile, or None when there is none or it is not a number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def check_pidfile(path: Path) -> None:
    """Refuse to start over a live pidfile; remove a stale one.

    Raises:
        ConfigurationError: the pidfile names a running process.
    """
    pid = read_pid(path)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        raise ConfigurationError(
            f"pidfile {str(path)!r} names process {pid}, which is running: stop it first, "
            "or give this worker another --pidfile"
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_pidfile(path: Path) -> None:
    """Write this process's id (atomically: a reader never sees half a number) and remove
    the file when this process exits cleanly.

    Raises:
        ConfigurationError: the file cannot be written.
    """
    pid = os.getpid()
    temporary = path.with_name(f".{path.name}.{pid}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(f"{pid}\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write pidfile {str(path)!r}: {exc}") from exc

    def remove() -> None:
        # Pool children inherit this handler: only the process named in the file removes it.
        if os.getpid() == pid and read_pid(path) == pid:
            with contextlib.suppress(OSError):
                path.unlink()

    atexit.register(remove)


def _open_log(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigurationError(f"cannot open logfile {str(path)!r}: {exc}") from exc


def _detach() -> None:
    """Fork, start a new session, fork again: the grandchild has no terminal and can never
    get one; the two parents leave at once (``os._exit``: no cleanup of theirs may run)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)


def _redirect(log_fd: int | None, detach: bool) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if detach:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        if log_fd is None:
            log_fd = null
    if log_fd is not None:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)


def daemonize(options: DaemonOptions, hostname: str | None) -> None:
    """Do what ``options`` asks for the node ``hostname`` (``-n``), in this order: check the
    pidfile and open the log (so a mistake is said on the terminal), detach, send output to
    the log, write the pidfile.

    Raises:
        ConfigurationError: a live pidfile, or a log, pidfile or working directory that
            cannot be used.
    """
    nodename = format_hostname(hostname)
    if options.umask is not None:
        os.umask(_umask(options.umask))
    if options.executable is not None:
        log.info(
            "--executable %s is not used: a detached worker is this process, forked",
            options.executable,
        )
    pidfile = Path(expand(options.pidfile, nodename)).absolute() if options.pidfile else None
    if pidfile is not None:
        check_pidfile(pidfile)
    logfile = Path(expand(options.logfile, nodename)).absolute() if options.logfile else None
    log_fd = _open_log(logfile) if logfile is not None else None
    if options.workdir:
        try:
            os.chdir(options.workdir)
        except OSError as exc:
            raise ConfigurationError(f"cannot use --workdir {options.workdir!r}: {exc}") from exc
    if options.detach:
        _detach()
    _redirect(log_fd, options.detach)
    if pidfile is not None:
        write_pidfile(pidfile)
    _drop_privileges(options.uid, options.gid)


def daemon_options(fn: F) -> F:
    """Add ``--detach``, ``--pidfile``, ``--logfile``, ``--workdir``, ``--uid``, ``--gid``,
    ``--umask`` and ``--executable`` to a command, passed to it as one ``daemon:
    DaemonOptions`` argument."""

    @click.option("--detach", is_flag=True, help="Run in the background, as a daemon.")
    @click.option("--pidfile", help="Write the process id here (%n: node name).")
    @click.option("--logfile", help="Send the output here, appended (%n: node name).")
    @click.option("--workdir", help="Change to this directory (with --detach, say).")
    @click.option("--uid", help="Run as this user (name or number) once the files are open.")
    @click.option("--gid", help="Run as this group (name or number).")
    @click.option("--umask", help="The file mode mask, in octal (022).")
    @click.option("--executable", help="Accepted for Celery's sake; not used.")
    @wraps(fn)
    def wrapper(
        *args: Any,
        detach: bool,
        pidfile: str | None,
        logfile: str | None,
        workdir: str | None,
        uid: str | None,
        gid: str | None,
        umask: str | None,
        executable: str | None,
        **kwargs: Any,
    ) -> Any:
        daemon = DaemonOptions(
            detach=detach,
            pidfile=pidfile,
            logfile=logfile,
            workdir=workdir,
            uid=uid,
            gid=gid,
            umask=umask,
            executable=executable,
        )
        return fn(*args, daemon=daemon, **kwargs)

    return wrapper  # type: ignore[return-value]
