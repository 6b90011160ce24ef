"""The `acd` command: `acd serve --config FILE` runs the daemon, `acd check-config FILE`
validates a configuration and prints each problem as `file:line: key: reason`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from acd.config import ConfigError, load_config

__all__ = ["main"]


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _check(path: str) -> int:
    try:
        load_config(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def _serve(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print("refusing to start: the configuration has errors", file=sys.stderr)
        return 2
    from acd.runtime.daemon import Daemon

    async def main() -> int:
        return await Daemon(path, config).run()

    try:
        return _run(main())
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acd", description="SIP telephony / ACD engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", "-c", default="config/acd.yaml")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.config)
    return _check(args.file)


if __name__ == "__main__":
    sys.exit(main())
