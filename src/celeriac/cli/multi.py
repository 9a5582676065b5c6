"""``celeriac multi``: start, stop and restart named workers in the background, as ``celery multi``.

    celeriac multi start w1 w2 -A proj -l INFO --pidfile=/var/run/%n.pid --logfile=/var/log/%n%I.log
    celeriac multi stopwait w1 w2 -A proj --pidfile=/var/run/%n.pid
    celeriac multi restart w1 w2 -A proj -l INFO --pidfile=/var/run/%n.pid
    celeriac multi start 3 -A proj -c:1 4        # celeriac1..3; the first with -c 4

Each node is ``celeriac worker --detach --pidfile F --logfile L -n NAME@HOST`` plus the options
given; the pidfile is how the other actions find it, so give them the same ``--pidfile``
(default ``%n.pid``, and ``%n%I.log`` for logs, in the current directory). ``stop`` sends SIGTERM
(running tasks finish, or go back to the queue), ``stopwait`` also waits for the processes to
exit, ``kill`` sends SIGKILL, ``restart`` is ``stopwait`` then ``start``; ``show`` prints the
commands and ``names`` the node names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from celeriac.cli.daemon import expand, pid_alive, read_pid

ACTIONS = ("start", "stop", "stopwait", "restart", "kill", "show", "names")
DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"
POLL = 0.1
START_TIMEOUT = 30.0  # seconds for a started worker to write its pidfile
GLOBAL_OPTIONS = ("-A", "--app", "-b", "--broker", "--result-backend")


@dataclass(frozen=True)
class Node:
    """One worker of ``multi``: its node name and the ``celeriac`` arguments that start it."""

    name: str
    pidfile: Path
    argv: tuple[str, ...]


def _split(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The node names (leading words that are not options), then the options."""
    names: list[str] = []
    rest = list(words)
    while rest and not rest[0].startswith("-"):
        names.append(rest.pop(0))
    if len(names) == 1 and names[0].isdigit():
        names = [f"celeriac{i}" for i in range(1, int(names[0]) + 1)]
    return names, rest


def _options(words: list[str]) -> list[tuple[str, str | None]]:
    """Options as (flag, value) pairs: ``--x=1``, ``--x 1``, ``-x 1``, or a lone flag."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            raise click.UsageError(f"unexpected argument {word!r}: node names come first")
        flag, eq, value = word.partition("=")
        if eq:
            pairs.append((flag, value))
        elif i + 1 < len(words) and not words[i + 1].startswith("-"):
            pairs.append((flag, words[i + 1]))
            i += 1
        else:
            pairs.append((flag, None))
        i += 1
    return pairs


def _celeriac_options(pairs: list[tuple[str, str | None]]) -> list[str]:
    words: list[str] = []
    for flag, value in pairs:
        if flag in GLOBAL_OPTIONS:
            if value is None:
                raise click.UsageError(f"{flag} needs a value")
            words.extend([flag, value])
    return words


def _for_node(flag: str, index: int, short: str) -> tuple[str, bool]:
    """``-c:1`` / ``-c:w1`` apply to one node: the flag, and whether this node takes it."""
    base, colon, which = flag.partition(":")
    if not colon:
        return flag, True
    return base, which in (str(index), short)


def nodes(words: Sequence[str], prefix: Sequence[str] = ()) -> list[Node]:
    """The nodes that ``multi <action> <words>`` names, with their worker command lines;
    ``prefix`` holds options for ``celeriac`` itself (``-A proj`` given before ``multi``).

    Raises:
        click.UsageError: no node names, or an argument out of place.
    """
    names, rest = _split(words)
    if not names:
        raise click.UsageError("name the nodes: multi start w1 w2 ..., or a number: multi start 3")
    pairs = _options(rest)
    # -A, -b and --result-backend belong to ``celeriac`` itself, before ``worker``.
    prefix = [*prefix, *_celeriac_options(pairs)]
    pairs = [(flag, value) for flag, value in pairs if flag not in GLOBAL_OPTIONS]
    host = socket.gethostname()
    found: list[Node] = []
    for index, given in enumerate(names, start=1):
        nodename = given if "@" in given else f"{given}@{host}"
        short = nodename.partition("@")[0]
        pidfile, logfile = DEFAULT_PIDFILE, DEFAULT_LOGFILE
        options: list[str] = []
        for raw_flag, value in pairs:
            flag, applies = _for_node(raw_flag, index, short)
            if not applies:
                continue
            if flag == "--pidfile" and value is not None:
                pidfile = value
            elif flag == "--logfile" and value is not None:
                logfile = value
            else:
                options.extend([flag] if value is None else [flag, value])
        pid_path = Path(expand(pidfile, nodename)).absolute()
        argv = (
            *prefix,
            "worker",
            "--detach",
            "--pidfile",
            str(pid_path),
            "--logfile",
            str(Path(expand(logfile, nodename)).absolute()),
            "-n",
            nodename,
            *options,
        )
        found.append(Node(nodename, pid_path, argv))
    return found


def _command() -> list[str]:
    return [sys.executable, "-m", "celeriac"]


def start(found: list[Node]) -> int:
    """Start each node (the command returns once it detached); the number that failed."""
    click.echo("> Starting nodes...")
    failed = 0
    for node in found:
        done = subprocess.run([*_command(), *node.argv], capture_output=True, text=True)
        if done.returncode == 0 and _started(node):
            click.echo(f"\t> {node.name}: OK")
        elif done.returncode == 0:
            failed += 1
            click.echo(f"\t> {node.name}: FAILED: it wrote no pidfile (see its logfile)")
        else:
            failed += 1
            why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
            click.echo(f"\t> {node.name}: FAILED: {why[0]}")
    return failed


def _started(node: Node, timeout: float = START_TIMEOUT) -> bool:
    """Whether the detached worker wrote its pidfile (it does so at once): so that a
    ``stop`` right after ``start`` finds it."""
    deadline = time.monotonic() + timeout
    while True:
        pid = read_pid(node.pidfile)
        if pid is not None and pid_alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL / 5)


def _signal(found: list[Node], signum: int, what: str) -> dict[Node, int]:
    """Send ``signum`` to each node that runs; the ones signalled, with their pids."""
    sent: dict[Node, int] = {}
    for node in found:
        pid = read_pid(node.pidfile)
        if pid is None or not pid_alive(pid):
            click.echo(f"> {node.name}: DOWN")
            _remove_stale(node)
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
            sent[node] = pid
            click.echo(f"> {what} {node.name}: {signal.Signals(signum).name} -> {pid}")
    return sent


def _remove_stale(node: Node) -> None:
    pid = read_pid(node.pidfile)
    if pid is None or not pid_alive(pid):
        with contextlib.suppress(FileNotFoundError):
            node.pidfile.unlink()


def _wait(sent: dict[Node, int], alive: Callable[[int], bool] = pid_alive) -> None:
    """Wait, as long as it takes, for the signalled processes to exit (their tasks end or
    go back to the queue first), then make sure no pidfile stays behind."""
    click.echo(f"> Waiting for {len(sent)} node{'s' if len(sent) != 1 else ''} -> ...")
    waiting = dict(sent)
    while waiting:
        for node, pid in list(waiting.items()):
            if not alive(pid):
                click.echo(f"\t> {node.name}: OK")
                _remove_stale(node)
                del waiting[node]
        if waiting:
            time.sleep(POLL)


def run(action: str, words: Sequence[str], prefix: Sequence[str]) -> int:
    """Carry out one ``multi`` action; the exit status.

    Raises:
        click.UsageError: an unknown action, or bad node arguments.
    """
    if action not in ACTIONS:
        raise click.UsageError(f"unknown multi action {action!r}: use one of {', '.join(ACTIONS)}")
    found = nodes(words, prefix)
    if action == "names":
        click.echo("\n".join(node.name for node in found))
    elif action == "show":
        click.echo("\n".join(" ".join(["celeriac", *node.argv]) for node in found))
    elif action == "start":
        return 1 if start(found) else 0
    elif action == "stop":
        _signal(found, signal.SIGTERM, "Stopping")
    elif action == "kill":
        for node in _signal(found, signal.SIGKILL, "Killing"):
            with contextlib.suppress(FileNotFoundError):
                node.pidfile.unlink()
    else:  # stopwait, restart
        _wait(_signal(found, signal.SIGTERM, "Stopping"))
        if action == "restart":
            return 1 if start(found) else 0
    return 0


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=True,
)
@click.argument("action")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def multi(ctx: click.Context, action: str, words: tuple[str, ...]) -> None:
    """Start, stop or restart background workers: multi ACTION NODES [WORKER OPTIONS].

    ACTION is start, stop, stopwait, restart, kill, show or names; NODES are names (w1 w2)
    or a number (3: celeriac1..3). Options go to every worker; -c:1 4 to the first only.
    """
    state: dict[str, Any] = ctx.ensure_object(dict)
    prefix: list[str] = []
    for flag, key in (("-A", "reference"), ("-b", "broker"), ("--result-backend", "backend")):
        if state.get(key):
            prefix.extend([flag, state[key]])
    ctx.exit(run(action, words, prefix))
