"""The systemd units for a VM install start each processor by instance name and share one
settings file whose keys are settings Herald has."""

from __future__ import annotations

import configparser
import importlib.util
import re
import subprocess
from pathlib import Path

from services.core.settings import Settings

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
PROCESSORS = ("ingress", "router", "egress", "campaigns", "verifier", "ledger", "bridge", "metrics", "console")


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string((SYSTEMD / name).read_text())
    return cp


def test_the_worker_unit_runs_the_processor_its_instance_names():
    cp = unit("herald@.service")
    cmd = cp["Service"]["ExecStart"]
    # What systemd runs after unescaping $$ -> $, for instance router-2.
    shell = re.search(r"-c '(.*)'", cmd).group(1).replace("$$", "$")
    for name in PROCESSORS:
        out = subprocess.run(["sh", "-c", shell.replace("exec /opt/herald/.venv/bin/python -m", "echo"),
                              "herald", f"{name}-2"], capture_output=True, text=True, check=True).stdout.strip()
        assert out == f"services.{name}"
        assert importlib.util.find_spec(out) is not None
    assert cp["Service"]["KillSignal"] == "SIGTERM" and cp["Service"]["Restart"] == "on-failure"


def test_the_example_settings_are_herald_settings_and_replicate_three_ways():
    env = dict(line.split("=", 1) for line in (SYSTEMD / "herald.env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    fields = {f"HERALD_{n.upper()}" for n in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    assert env["HERALD_TOPIC_REPLICATION"] == "3" and env["HERALD_TOPIC_MIN_ISR"] == "2"
    assert len(env["HERALD_KAFKA_BOOTSTRAP"].split(",")) == 3
