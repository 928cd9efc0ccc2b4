"""The embedded Celery broker (kombu's filesystem transport) on a fresh checkout: the worker
starts without any folder made by hand, and every folder it uses stays under var/."""

import pytest

from core.testing import ROOT, celery_worker


@pytest.mark.django_db(transaction=True)  # the worker reads a copy of the test database
def test_a_worker_starts_on_a_fresh_checkout_with_its_folders_under_the_broker_dir(tmp_path):
    broker_dir = tmp_path / "fresh-clone" / "var" / "broker"  # nothing of it exists yet
    control_at_root = (ROOT / "control").exists()
    with celery_worker(tmp_path, "filesystem://", CELERY_BROKER_DIR=str(broker_dir)) as (worker, _):
        output = []
        for line in iter(worker.stdout.readline, b""):
            output.append(line.decode(errors="replace"))
            if " ready." in output[-1]:
                break
        assert output and " ready." in output[-1], "".join(output)
    assert {path.name for path in broker_dir.iterdir()} == {"queue", "processed", "control"}
    assert any(broker_dir.joinpath("control").iterdir())  # kombu's exchange table is there …
    assert control_at_root or not (ROOT / "control").exists()  # … not in the repository root
