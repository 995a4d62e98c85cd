"""Processes for `python -m prodmatch.bench.vs_mvp`: servers of ours on 127.0.0.1 (started, probed, stopped, their
CPU time read from /proc), one-off commands with their output to a log, and the machine's CPU and load."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def cpu_model() -> str:
    """The CPU's model name, core count, and the vector extensions that decide int8 speed (from /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]
    return f"{name}, {os.cpu_count()} logical cores, {' '.join(flag for flag in wanted if flag in flags) or 'no AVX2'}"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process PID (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(command: list[str], log: Path) -> None:
    """Run COMMAND to completion, its output to LOG; raise with the log's tail when it fails."""
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{tail}")
    print(f"  done in {time.perf_counter() - started:.0f} s (log: {log})", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Server:
    """A server process of ours on 127.0.0.1: started, waited for until PROBE answers 200, stopped."""

    def __init__(self, name: str, command: list[str], port: int, probe: str, log: Path) -> None:
        self.name, self.command, self.port, self.probe, self.log = name, command, port, probe, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float) -> float:
        """Start the server; return its start-up seconds (until PROBE answers 200)."""
        if not port_free(self.port):
            raise SystemExit(f"port {self.port} is taken: choose another (--{self.name}-port)")
        print(f"starting {self.name}: {' '.join(self.command)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with open(self.log, "w") as handle:
            self.process = subprocess.Popen(self.command, stdout=handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + self.probe, timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"{self.name} not ready after {timeout_s:.0f} s (log: {self.log})")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def prodmatch_command(explicit: str | None) -> list[str]:
    """The prodmatch CLI: --prodmatch, else the one beside this Python, else on PATH."""
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).parent / "prodmatch"
    found = str(beside) if beside.exists() else shutil.which("prodmatch")
    if not found:
        raise SystemExit("prodmatch CLI not found: pass --prodmatch PATH")
    return [found]
