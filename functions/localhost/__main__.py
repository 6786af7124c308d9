"""`python -m functions.localhost`: serve function_app.py like `func start` does."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

import uvicorn

from ..telemetry import configure_logging
from .host import HostStartupError, apply_local_settings, build_host
from .hostconfig import HostConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.localhost", description=__doc__)
    parser.add_argument("--script-root", default=".", help="folder with function_app.py and host.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUNCTIONS_HTTPWORKER_PORT", 7071)))
    parser.add_argument("--settings", default=None, help="local.settings.json (default: in script root)")
    parser.add_argument("--host-json", default=None,
                        help="another host.json (tests use shorter retry delays); default: in script root")
    args = parser.parse_args(argv)
    root = Path(args.script_root).resolve()
    if args.host_json:
        args.host_json = str(Path(args.host_json).resolve())
    apply_local_settings(Path(args.settings) if args.settings else root / "local.settings.json")
    configure_logging(os.environ.get("TRAPALERT_LOG_FORMAT", "json"))
    os.chdir(root)
    try:
        host = build_host(root, host_json_path=Path(args.host_json).resolve() if args.host_json else None)
    except (HostStartupError, HostConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        host.start_background()
        yield
        host.stop()

    asgi = host.asgi_app()
    asgi.router.lifespan_context = lifespan
    logging.getLogger("trapalert.host").info("listening on http://%s:%d/api/", args.host, args.port)
    config = uvicorn.Config(asgi, host=args.host, port=args.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=int(host.stop_grace_s))
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
