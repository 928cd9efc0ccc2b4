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


def test_the_demo_on_another_port_links_its_e_mails_to_that_port():
    """QA pass 3, F6: alert e-mails of `make demo DEMO_PORT=8630` linked port 8000."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_demo", ROOT / "scripts" / "run_demo.py")
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    assert run_demo.demo_site_url(run_demo.DEFAULT_SITE_URL, 8630) == "http://127.0.0.1:8630"
    assert run_demo.demo_site_url(run_demo.DEFAULT_SITE_URL, 8000) is None
    assert run_demo.demo_site_url("https://usage.example.com", 8630) is None  # one set is kept
