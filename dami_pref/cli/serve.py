"""``dami-pref serve``: an OpenAI-compatible endpoint on loopback (FastAPI and uvicorn).

    dami-pref serve --ranker outputs/toy/ranker --port 8000
    curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "dami-pref", "messages": [{"role": "user", "content": "12+7+19"}]}'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import ClassVar

from ..utils.options import at_least, between
from .common import DecodingArgs, EngineArgs, RankerGenerationArgs, follow_ranker


@dataclass
class ServeArgs(RankerGenerationArgs, EngineArgs, DecodingArgs):
    mixed_by_default: ClassVar[tuple[str, ...]] = ("runtime", "vllm")  # requests arrive apart
    ranker: str = field(default="", metadata={"help": "ranker folder or Hub id", "required": True})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={**between(1, 65535), "help": "port to listen on"})
    max_queue: int = field(default=256, metadata={
        **at_least(1), "help": "requests that may wait; one more gets HTTP 429"})
    max_batch: int = field(default=32, metadata={
        **at_least(1), "help": "requests decoded at once (of one λ where the engine groups λ)"})
    max_wait_seconds: float = field(default=600.0, metadata={
        **at_least(0, included=False),
        "help": "a request that waits longer for the engine is answered 503"})
    drain_seconds: float = field(default=600.0, metadata={
        **at_least(0), "help": "on SIGTERM, how long to finish the requests already accepted; "
                               "the rest are answered 503"})
    max_body_bytes: int = field(default=16 * 2 ** 20, metadata={
        **at_least(1), "help": "a request body larger than this is answered 413 before it is "
                               "read"})


def check_host(host: str, port: int) -> None:
    """An address this machine can listen on, known before anything loads."""
    import socket

    from ..errors import DamiPrefError

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        raise DamiPrefError(f"--host {host!r} is not an address to listen on ({err})") from None


def run(args: ServeArgs) -> int:
    import importlib.util

    from ..errors import DamiPrefError

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise DamiPrefError(f"dami-pref serve needs fastapi, uvicorn and prometheus-client "
                            f"({missing[0]} is missing): pip install 'dami-pref[serve]' (or "
                            "pip install -e \".[serve]\" in a checkout)")
    from ..ranker.inference import LambdaRanker
    from ..serve.app import ServeSettings, create_app, run_server

    if not args.ranker:
        raise DamiPrefError("--ranker is required (a ranker folder or Hub id)")
    from ..runtime.engines import check_engine

    check_engine(args.engine)
    if args.engine == "vllm":
        args.vllm_settings()  # its options are checked before the ranker loads
    check_host(args.host, args.port)
    ranker = LambdaRanker.from_pretrained(args.ranker, device=args.device,
                                          dtype=args.ranker_dtype,
                                          trust_remote_code=args.trust_remote_code)
    follow_ranker(args, ranker)  # the pair, prompt settings and budget its rollouts used
    settings = ServeSettings(decoding=args.decoding(), max_queue=args.max_queue,
                             max_batch=args.max_batch, max_wait_seconds=args.max_wait_seconds,
                             drain_seconds=args.drain_seconds,
                             max_body_bytes=args.max_body_bytes)
    app = create_app(args.runtime(serving=True), ranker, settings)
    print(f"dami-pref serve: http://{args.host}:{args.port}/v1 (models: dami-pref, "
          f"dami-pref@λ for λ in {ranker.grid})", file=sys.stderr, flush=True)
    run_server(app, args.host, args.port, args.drain_seconds)
    return 0
