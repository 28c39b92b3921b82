"""Entry point: `python -m services.simulator [--port N ...]`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from services.simulator.server import SimulatorConfig, create_app

log = logging.getLogger("herald.simulator")


def parse_args(argv: Sequence[str] | None, env_config: SimulatorConfig) -> SimulatorConfig:
    p = argparse.ArgumentParser(
        prog="python -m services.simulator",
        description="Carrier simulator (test double). Flags override HERALD_SIM_* variables.",
    )
    p.add_argument("--port", type=int, default=env_config.port, help="listen port (127.0.0.1)")
    p.add_argument("--name", default=env_config.name, help="carrier name used in logs")
    p.add_argument("--dlr-url", default=env_config.dlr_url, help="where DLRs are POSTed")
    p.add_argument("--dlr-secret", default=env_config.dlr_secret, help="HMAC key for DLRs")
    p.add_argument(
        "--dlr-delay-ms", type=int, default=env_config.dlr_delay_ms, help="delay before a DLR"
    )
    p.add_argument(
        "--api-token", default=env_config.api_token, help="bearer token required on /submit"
    )
    a = p.parse_args(argv)
    return replace(
        env_config,
        port=a.port,
        name=a.name,
        dlr_url=a.dlr_url,
        dlr_secret=a.dlr_secret,
        dlr_delay_ms=a.dlr_delay_ms,
        api_token=a.api_token,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = parse_args(argv, SimulatorConfig.from_env())
        config.validate()
    except ValueError as exc:
        print(f"simulator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    log.info(
        "carrier simulator %r listening on 127.0.0.1:%d, DLRs to %s",
        config.name,
        config.port,
        config.dlr_url,
    )
    # run_app installs SIGINT/SIGTERM handlers and runs the app's cleanup on either.
    web.run_app(create_app(config), host="127.0.0.1", port=config.port, print=None)
    log.info("carrier simulator %r stopped", config.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
