"""Every long-running program stops on SIGTERM within its shutdown timeout, whatever state its
broker connection is in: connected, broker gone mid-run, broker never reachable, or a broker
that accepts TCP and never answers. (`make demo` hung when a mapper ignored SIGTERM after the
broker went away first.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import free_port, start_broker, stop_broker
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

# Each program's own bound on stopping, plus the time a Python process needs to exit.
_EXIT_SLACK_S = 5.0


def _devices_file(directory: Path) -> Path:
    path = directory / "cameras.yaml"
    if not path.exists():
        text = subprocess.run(
            [sys.executable, "-m", "device_sim", "--devices", "2", "--emit-devices", "v1alpha2"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path.write_text(text)
    return path


Command = Callable[[str, Path, Path], list[str]]


def _mapper(kind: str) -> Command:
    return lambda url, _registry, tmp: [
        "mappers",
        "--broker",
        url,
        "--devices",
        str(_devices_file(tmp.parent)),
        "--log-level",
        "INFO",
        kind,
    ]


PROGRAMS: dict[str, tuple[Command, float]] = {
    "edge-runtime": (
        lambda url, registry, _tmp: [
            "edge_runtime",
            "--broker",
            url,
            "--model-registry",
            str(registry),
            "--model-version",
            "1.0.0",
            "--metrics-port",
            "0",
            "--http-port",
            "0",
            "--runtime-id",
            f"shutdown-{os.getpid()}",
            "--shutdown-timeout-s",
            "3",
            "--twin-cache-dir",
            str(_tmp / "cache"),
        ],
        3.0 + 2.0,  # drain bound + the offline publish's bound
    ),
    "kubeedge-mapper camera": (_mapper("camera"), 10.0),
    "kubeedge-mapper results": (_mapper("results"), 10.0),
    "kubeedge-twin-sim serve": (
        lambda url, _registry, tmp: [
            "kubeedge_sim.twin_sim",
            "--broker",
            url,
            "serve",
            "--devices",
            str(_devices_file(tmp.parent)),
        ],
        5.0,
    ),
    "device-sim": (
        lambda url, _registry, _tmp: [
            "device_sim",
            "--broker",
            url,
            "--devices",
            "2",
            "--duration",
            "300",
            "--no-live",
            "--report",
            str(_tmp / "report.json"),
        ],
        10.0,
    ),
}


@contextlib.contextmanager
def _silent_broker() -> Iterator[int]:
    """A TCP listener that accepts connections and never says a word (a hung broker)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _output(process: subprocess.Popen[bytes]) -> str:
    return process.communicate()[0].decode(errors="replace")[-3000:]


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_program_stops_on_sigterm_in_every_connection_state(program, registry, tmp_path):
    """One process per state, side by side: connected, broker gone after connecting, broker
    never reachable, broker silent (accepts TCP, never answers CONNECT)."""
    make_command, bound_s = PROGRAMS[program]
    with contextlib.ExitStack() as stack:
        connected = start_broker(tmp_path)
        stack.callback(lambda: connected.process.poll() is None and stop_broker(connected))
        gone = start_broker(tmp_path)
        stack.callback(lambda: gone.process.poll() is None and stop_broker(gone))
        urls = {
            "connected": connected.url,
            "broker-gone": gone.url,
            "unreachable": f"mqtt://127.0.0.1:{free_port()}",
            "silent": f"mqtt://127.0.0.1:{stack.enter_context(_silent_broker())}",
        }
        processes = {}
        for state, url in urls.items():
            workdir = tmp_path / state
            workdir.mkdir()
            processes[state] = process = _start(make_command(url, registry, workdir))
            stack.callback(lambda p=process: p.poll() is None and p.kill())
        time.sleep(3.0)  # started, connected (or trying to)
        for state, process in processes.items():
            assert process.poll() is None, (state, _output(process))
        stop_broker(gone)
        time.sleep(1.0)
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + bound_s + _EXIT_SLACK_S
        for state, process in processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail(
                    f"{state}: did not stop within {bound_s + _EXIT_SLACK_S} s of "
                    f"SIGTERM:\n{_output(process)}"
                )
        for state, process in processes.items():
            output = _output(process)
            assert "Traceback" not in output, (state, output)
