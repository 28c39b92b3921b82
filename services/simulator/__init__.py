"""Carrier simulator: a test double that stands in for an SMS carrier's HTTP API.

Not part of the pipeline; e2e tests point an egress connector at it and read back what it
received. See `server.py` for the endpoints.
"""

from services.simulator.server import Behaviour, SimulatorConfig, create_app

__all__ = ["Behaviour", "SimulatorConfig", "create_app"]
