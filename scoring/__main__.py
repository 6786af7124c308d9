"""``python -m scoring [--host H] [--port P] [--check]``: run the detector service (or only load the model).

Exit codes: 0 stopped normally; 2 bad settings or missing model file (before listening); 3 the model
failed to load after the server started (corrupt or mismatched file); the message names the file and the
signature that was expected.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

EXIT_CONFIG = 2
EXIT_MODEL = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SCORING_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SCORING_PORT", "8080")))
    parser.add_argument(
        "--check", action="store_true", help="load and warm up the model, print /v1/model, exit"
    )
    args = parser.parse_args(argv)

    from scoring.errors import ModelLoadError
    from scoring.settings import ScoringSettingsError, load_settings

    try:
        settings = load_settings()
    except ScoringSettingsError as exc:
        print(f"scoring: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from scoring.backends import create_backend

    try:
        backend = create_backend(settings)
        if (
            settings.resolved_backend() in ("onnx", "frozen_graph", "saved_model")
            and not backend.model_path.exists()
        ):
            raise ModelLoadError(
                f"model file {backend.model_path} does not exist; expected {backend.expected()}"
            )
    except ModelLoadError as exc:
        print(f"scoring: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    if args.check:
        import json

        try:
            backend.load()
            backend.verify_expected_model()
            backend.warmup()
        except ModelLoadError as exc:
            print(f"scoring: {exc}", file=sys.stderr)
            return EXIT_MODEL
        print(json.dumps(backend.describe(), indent=2))
        return 0

    import uvicorn

    from scoring.app import create_app

    app = create_app(settings, backend)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        log_config=None,
    )
    server = uvicorn.Server(config)
    service = app.state.service

    def fatal(_message: str) -> None:
        server.should_exit = True

    service.on_fatal = fatal
    server.run()
    if service.load_error is not None:
        print(f"scoring: the model failed to load: {service.load_error}", file=sys.stderr)
        return EXIT_MODEL
    return 0


if __name__ == "__main__":
    sys.exit(main())
