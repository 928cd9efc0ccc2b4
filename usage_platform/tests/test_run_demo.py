"""`scripts/run_demo.py` (what `make demo` ends with) on a port already taken: it says so and
how to pick another, at once, instead of printing "running" while gunicorn retries and exits."""

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_taken_port_is_refused_with_the_way_out():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "scripts/run_demo.py", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50},
        )
    assert result.returncode == 1
    assert f"Port {port} is already in use" in result.stderr
    assert f"make demo DEMO_PORT={port + 1}" in result.stderr
    assert "is running" not in result.stdout
