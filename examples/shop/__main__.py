"""Run one shop service: ``python -m shop SERVICE [--port N] [--host H]``.

``python -m shop loadgen [--rate R] [--users N]`` runs the users instead (see ``shop.loadgen``).

One process is one pod: one uvicorn worker (or one gRPC server) per process, so that under
``podtrace run`` every process carries its own pod's identity.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from shop import INFRASTRUCTURE, SERVICES

DEFAULT_PORTS = {name: 8080 + i for i, name in enumerate(SERVICES + INFRASTRUCTURE)}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve until stopped."""
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["loadgen"]:
        from shop.loadgen import main as loadgen

        return loadgen(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m shop", description=__doc__)
    parser.add_argument("service", choices=SERVICES + INFRASTRUCTURE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(args_list)
    port = args.port if args.port is not None else DEFAULT_PORTS[args.service]
    if args.service == "recommendation":
        from shop.recommendation import serve

        asyncio.run(serve(port, args.host))
        return 0
    import uvicorn

    module = importlib.import_module(f"shop.{args.service}")
    uvicorn.run(module.app, host=args.host, port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
