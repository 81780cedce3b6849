"""The `ari-amd` command: offline tools over the detector, one live call, and the service."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ari_amd.audio import AudioError, load
from ari_amd.detect import AmdParams, Detector, Mode, ParameterError, Verdict


def add_tuning_args(p: argparse.ArgumentParser) -> None:
    """Twilio's four tunables and the mode, with Twilio's units (timeout in seconds)."""
    p.add_argument("--mode", default="Enable", help="Enable or DetectMessageEnd (default Enable)")
    p.add_argument("--timeout", type=int, default=30, metavar="S", help="MachineDetectionTimeout, 3-59 s (30)")
    p.add_argument("--speech-threshold", type=int, default=2400, metavar="MS", help="1000-6000 ms (2400)")
    p.add_argument("--speech-end-threshold", type=int, default=1200, metavar="MS", help="500-5000 ms (1200)")
    p.add_argument("--silence-timeout", type=int, default=5000, metavar="MS", help="2000-10000 ms (5000)")
    p.add_argument("--beep-timeout", type=int, default=9000, metavar="MS",
                   help="DetectMessageEnd: how long after the greeting a beep is awaited, 1000-59000 ms (9000)")


def params_from(args: argparse.Namespace) -> AmdParams:
    if not 3 <= args.timeout <= 59:  # checked in seconds so the message speaks the user's unit
        raise ParameterError("MachineDetectionTimeout", args.timeout, "3-59 s")
    return AmdParams(
        mode=Mode.parse(args.mode),
        timeout_ms=args.timeout * 1000,
        speech_threshold_ms=args.speech_threshold,
        speech_end_threshold_ms=args.speech_end_threshold,
        silence_timeout_ms=args.silence_timeout,
        beep_timeout_ms=args.beep_timeout,
    )


def run_detector(samples, params: AmdParams, trace: bool = False) -> Detector:  # type: ignore[no-untyped-def]
    det = Detector(params)
    if trace:
        det.trace = []
    det.feed(samples)
    if not det.done:
        det.finish("end_of_audio")
    return det


def _verdict_line(name: str, v: Verdict) -> str:
    return f"{name}\t{v.answered_by.value}\t{v.duration_ms}ms\t{v.cause}"


def cmd_classify(args: argparse.Namespace) -> int:
    params = params_from(args)
    failed = 0
    for name in args.files:
        try:
            samples = load(name)
        except AudioError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": name, "error": str(exc)}))
            continue
        det = run_detector(samples, params)
        final = det.verdicts[-1]
        if args.json:
            record: dict[str, object] = {"file": name, **final.as_dict()}
            record["verdicts"] = [v.as_dict() | {"segments": None} for v in det.verdicts]
            print(json.dumps(record))
        else:
            print(_verdict_line(name, final))
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ari_amd.evaluate import LabelsError, Outcome, Report, format_summary, read_labels

    params = params_from(args)
    folder = Path(args.dir)
    try:
        clips = read_labels(folder, params.mode)
    except LabelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = Report(params.mode, params)
    for clip in clips:
        try:
            samples = load(clip.file)
        except AudioError as exc:
            report.errors.append(str(exc))
            continue
        det = run_detector(samples, params)
        report.outcomes.append(Outcome(clip, det.verdicts[-1], tuple(det.verdicts[:-1])))
    summary = report.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
        if args.list_errors:
            for o in report.outcomes:
                if not o.correct:
                    print(f"  wrong: {o.clip.file.name} {o.clip.category} expected {o.clip.expected}, got "
                          f"{o.verdict.answered_by.value} at {o.verdict.duration_ms}ms ({o.verdict.cause})")
    return 1 if report.errors else 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        from ari_amd.explain import draw
    except ImportError as exc:  # matplotlib is an extra
        print(f"error: explain needs matplotlib ({exc}); install ari-amd[plot]", file=sys.stderr)
        return 2
    params = params_from(args)
    try:
        samples = load(args.file)
    except AudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    det = run_detector(samples, params, trace=True)
    out = Path(args.output)
    draw(samples, det, out, title=Path(args.file).name)
    print(_verdict_line(args.file, det.verdicts[-1]))
    print(f"wrote {out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ari_amd.evaluate import LabelsError
    from ari_amd.tune import format_trials, tune

    if args.false_machine_cost <= 0 or args.false_human_cost <= 0:
        print("error: --false-machine-cost and --false-human-cost must be positive", file=sys.stderr)
        return 2
    try:
        trials = tune(Path(args.dir), args.false_machine_cost, args.false_human_cost, Mode.parse(args.mode))
    except LabelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_trials(trials))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from ari_amd.synth.corpus import write_corpus

    write_corpus(Path(args.dir), per_category=args.per_category, seed=args.seed)
    print(f"wrote {args.dir}/labels.csv")
    return 0


def add_service_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="TOML settings (see ari_amd/calls/config.py); env ARI_AMD_* override"
    )
    p.add_argument("--ari-url", help="ARI base URL (http://127.0.0.1:8088)")
    p.add_argument("--ari-user", help="ARI user (ari-amd)")
    p.add_argument("--ari-password", help="ARI password (ari-amd); prefer ARI_AMD_ARI_PASSWORD")
    p.add_argument("--log-level", default="info", help="debug, info, warning, error (info)")


def settings_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from ari_amd.calls.config import load_settings

    settings = load_settings(args.config)
    overrides = {k: v for k, v in {"ari_url": args.ari_url, "ari_user": args.ari_user,
                                   "ari_password": args.ari_password}.items() if v}
    return replace(settings, **overrides)


def cmd_call(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from ari_amd.calls.config import ConfigError
    from ari_amd.calls.oneshot import place_one
    from ari_amd.calls.stasis_args import check_callback_url
    from ari_amd.logs import configure_logging

    try:
        params = params_from(args)
        settings = settings_from(args)
        if args.callback:
            check_callback_url(args.callback, "--callback")
        if args.callback and not args.async_amd:
            raise ParameterError("--callback", args.callback, "used with --async")
        configure_logging(args.log_level, json=args.log_json)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = args.app or f"{settings.ari_app}-call-{os.getpid()}"  # never take over a running serve's app
    result = asyncio.run(place_one(settings, app, args.endpoint, params, args.async_amd, args.callback,
                                   args.ring_timeout, args.caller_id))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['call_id']}\t{result['status']}\t{result.get('answered_by') or '-'}\t"
              f"{result.get('duration_ms', '-')}ms\t{result.get('cause') or result.get('error') or ''}")
    return 0 if result.get("error") is None else 1


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from ari_amd.calls.config import ConfigError
    from ari_amd.logs import configure_logging
    from ari_amd.service import serve

    try:
        settings = settings_from(args)
        configure_logging(args.log_level, json=True)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # uvloop (the `fast` extra) takes in about five times the RTP packets per core
        import uvloop
    except ImportError:
        return asyncio.run(serve(settings))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings))


def cmd_telnyx_public_key(args: argparse.Namespace) -> int:
    from ari_amd.api.settings import ApiSettings
    from ari_amd.calls.config import ConfigError, load_settings
    from ari_amd.calls.telnyx_signing import load_signer

    try:
        settings = ApiSettings.coerce(load_settings(args.config))
        signer = load_signer(settings.telnyx_signing_key, settings.telnyx_key_path)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(signer.public_key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ari-amd", description="Answering-machine detection for Asterisk.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="say who answered, for each audio file")
    add_tuning_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="score the detector on a labelled folder (labels.csv)")
    add_tuning_args(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--list-errors", action="store_true", help="print every clip the detector got wrong")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("explain", help="draw why the detector decided what it did")
    add_tuning_args(p)
    p.add_argument("-o", "--output", default="timeline.png", help="PNG to write (timeline.png)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("tune", help="suggest the four parameters for a price of each kind of error")
    p.add_argument("--mode", default="Enable", help="Enable or DetectMessageEnd (default Enable)")
    p.add_argument("--false-machine-cost", type=float, default=3.0, help="price of a person called a machine (3)")
    p.add_argument("--false-human-cost", type=float, default=1.0, help="price of a machine called a person (1)")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("call", help="place one call through Asterisk and print who answered")
    add_tuning_args(p)
    add_service_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object once the verdict is known")
    p.add_argument(
        "--async", dest="async_amd", action="store_true", help="AsyncAmd: the call goes on; verdict to --callback"
    )
    p.add_argument("--callback", metavar="URL", help="AsyncAmdStatusCallback: POST the verdict here (with --async)")
    p.add_argument("--ring-timeout", type=int, default=30, metavar="S", help="seconds to wait for an answer (30)")
    p.add_argument("--caller-id", help='caller id, e.g. "Dialer <1000>"')
    p.add_argument("--app", help="ARI application name (default: ari-amd-call-<pid>, so a running serve is untouched)")
    p.add_argument("--log-json", action="store_true", help="JSON logs on stderr")
    p.add_argument("endpoint", metavar="ENDPOINT", help="e.g. PJSIP/sipp or PJSIP/1000@trunk")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("serve", help="run the ARI application (dialplan Stasis() door, HTTP APIs)")
    add_service_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("telnyx-public-key",
                       help="print the public key Telnyx-dialect webhooks verify with (where Telnyx's would go)")
    p.add_argument("--config", metavar="FILE", help="TOML settings; env ARI_AMD_* override")
    p.set_defaults(func=cmd_telnyx_public_key)

    p = sub.add_parser("synth", help="write a labelled folder of synthetic call audio")
    p.add_argument("--per-category", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
