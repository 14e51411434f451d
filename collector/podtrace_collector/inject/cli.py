"""``podtrace inject`` and ``podtrace webhook``: flags, files, exit codes.

``podtrace inject`` exits 0 with the manifests on stdout and one report line per object on
stderr, 1 when an object cannot be injected or the input is not manifests (nothing is printed on
stdout then, so a pipe into ``kubectl apply`` applies nothing), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from collections.abc import Sequence

from podtrace_collector.errors import InjectError, ManifestError
from podtrace_collector.inject.manifests import dump_documents, load_documents, transform
from podtrace_collector.inject.mutate import inject_template, remove_template
from podtrace_collector.inject.options import (
    DEFAULT_GATEWAY,
    DEFAULT_IMAGE,
    SIDECAR_MODES,
    InjectOptions,
    parse_python,
)

logger = logging.getLogger("podtrace_collector.inject")

TLS_DIR = "/etc/podtrace/tls"  # where webhook.yaml mounts the cert-manager Secret


def inject_main(argv: Sequence[str]) -> int:
    """``podtrace inject -f FILE``: print the manifests with podtrace added (or removed)."""
    parser = argparse.ArgumentParser(
        prog="podtrace inject",
        description="Add the podtrace sidecar, downward-API environment and volume to every pod "
        "template of Kubernetes manifests, e.g. "
        "kubectl get deploy cart -o yaml | podtrace inject -f - | kubectl apply -f -",
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a manifest file (YAML or JSON), or - for stdin; may be repeated",
    )
    parser.add_argument(
        "--remove", action="store_true", help="take out what podtrace inject added, exactly"
    )
    _add_injection_flags(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        options = _options(args)
    except InjectError as exc:
        print(f"podtrace inject: {exc}", file=sys.stderr)
        return 2
    try:
        objects = [
            obj for name in args.filename for obj in load_documents(_read(name), source=name)
        ]
        change = (
            remove_template if args.remove else functools.partial(inject_template, options=options)
        )
        changed, report = transform(objects, change)
    except InjectError as exc:
        print(f"podtrace inject: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(dump_documents(changed))
    for line in report:
        print(line, file=sys.stderr)
    return 0


def webhook_main(argv: Sequence[str]) -> int:
    """``podtrace webhook``: serve the mutating admission webhook until SIGTERM."""
    args = _parse(webhook_parser(), argv)
    if isinstance(args, int):
        return args
    from podtrace_collector.cli import configure_logging  # the collector's JSON log lines
    from podtrace_collector.inject import server
    from podtrace_collector.inject.admission import Policy

    configure_logging(args.log_level)
    try:
        excluded = {*args.exclude_namespace, *filter(None, [os.environ.get("POD_NAMESPACE")])}
        policy = Policy(options=_options(args), exclude_namespaces=frozenset(excluded))
        certificate = server.ReloadingCertificate(args.tls_cert, args.tls_key)
        sock = server.listen(args.bind, args.port)
    except InjectError as exc:
        print(f"podtrace webhook: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # unreadable TLS files, a port in use
        print(f"podtrace webhook: {exc}", file=sys.stderr)
        return 1
    app = server.create_app(policy)
    extra = {"port": sock.getsockname()[1], "excluded": sorted(policy.exclude_namespaces)}
    logger.info("webhook started", extra=extra)
    # uvicorn handles SIGTERM itself, then raises it again for the handlers it replaced: these,
    # so that a clean stop exits 0 as the collector does.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda signum, frame: None)
    server.make_server(app, certificate, args.log_level).run(sockets=[sock])
    logger.info("webhook stopped")
    return 0


def webhook_parser() -> argparse.ArgumentParser:
    """The flags of ``podtrace webhook``."""
    parser = argparse.ArgumentParser(
        prog="podtrace webhook",
        description="Serve a Kubernetes mutating admission webhook that adds podtrace to pods "
        "(see examples/k8s/webhook.yaml).",
    )
    parser.add_argument("--bind", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    parser.add_argument("--port", type=_port, default=8443, help="HTTPS port (default 8443)")
    parser.add_argument("--tls-cert", default=f"{TLS_DIR}/tls.crt", help="certificate (PEM) file")
    parser.add_argument("--tls-key", default=f"{TLS_DIR}/tls.key", help="private key (PEM) file")
    parser.add_argument(
        "--exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="never inject pods of this namespace; may be repeated (kube-system and the "
        "webhook's own namespace, $POD_NAMESPACE, always are)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    _add_injection_flags(parser)
    return parser


def _add_injection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "what to inject (a pod template's podtrace.io/* annotations override these)"
    )
    group.add_argument(
        "--sidecar",
        choices=SIDECAR_MODES,
        default="native",
        help="native: an init container with restartPolicy: Always (Kubernetes >= 1.29, the "
        "default); container: a plain container, for older clusters",
    )
    group.add_argument(
        "--gateway",
        default=DEFAULT_GATEWAY,
        help=f"where the sidecar forwards spans (default {DEFAULT_GATEWAY})",
    )
    group.add_argument("--image", default=DEFAULT_IMAGE, help=f"sidecar image ({DEFAULT_IMAGE})")
    group.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="CONTAINER",
        help="run this container's command under `podtrace run` (it must have podtrace "
        "installed); may be repeated; '*' for every container",
    )
    group.add_argument(
        "--forward-token-secret",
        metavar="SECRET/KEY",
        help="the Secret key holding the gateway's --otlp-token",
    )


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a bad flag (2); argparse has said why
        return exc.code if isinstance(exc.code, int) else 2


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _options(args: argparse.Namespace) -> InjectOptions:
    python = frozenset().union(*(parse_python(value) for value in args.python))
    return InjectOptions(
        image=args.image,
        gateway=args.gateway,
        sidecar=args.sidecar,
        python=python,
        forward_token_secret=args.forward_token_secret,
    )


def _read(name: str) -> str:
    try:
        if name == "-":
            return sys.stdin.read()
        with open(name, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ManifestError(f"{name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{name}: not UTF-8 text") from None
