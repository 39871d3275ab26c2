"""The `edgeopt` command: builds a CompileConfig from flags (or a YAML file) and calls the API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeopt", description="Compile trained models into verified, measured edge builds."
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="build, verify and measure a model for one or more targets")
    c.add_argument("model", nargs="?", help=".onnx file, torch.export .pt2 file, or package.module:factory")
    c.add_argument("--target", action="append", help="target profile (repeatable; default ort-cpu)")
    c.add_argument("--out", help="output folder (default edgeopt-out)")
    c.add_argument("--data", help="evaluation data: .npz, MNIST idx folder, image folder or recipe .yaml")
    c.add_argument("--calibration", help="calibration data (same forms as --data)")
    c.add_argument("--train", help="training data (for passes that train)")
    c.add_argument("--input-shape", action="append", default=[], help="NAME:1,3,224,224 (repeatable)")
    c.add_argument("--variant", action="append", help="build only these variants")
    c.add_argument("--quantize", choices=["none", "dynamic", "static", "auto"])
    c.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile", "mse"])
    c.add_argument("--calibration-samples", type=int)
    c.add_argument("--bias-correction", action="store_true", default=None,
                   help="correct quantized Conv/Gemm biases for the mean shift INT8 causes (static INT8)")
    c.add_argument("--max-accuracy-drop", type=float, help="quality budget in points of --metric (default 1.0)")
    c.add_argument("--metric", choices=["auto", "top1", "top1_agreement", "cosine"],
                   help="what judges a build against the original (default auto: top1 with labels, else top-1 "
                        "agreement for class scores, else cosine); cosine for embedding models")
    c.add_argument("--eval-samples", type=int, help="evaluate on the first N samples only")
    c.add_argument("--threads", type=int, help="threads for timing and evaluation (default: all cores)")
    c.add_argument("--iters", type=int, help="timing rounds (default 100)")
    c.add_argument("--seed", type=int)
    c.add_argument("--explore", action="store_true", help="build the default grid of pruned/distilled variants")
    c.add_argument("--distill-hard-weight", type=float, help="hard-label loss weight of distillation (default 0.5)")
    c.add_argument("--config", help="YAML config file (flags override it)")
    c.add_argument("--save-config", help="write the effective config to this YAML file and exit")
    c.add_argument("--dry-run", action="store_true", help="validate everything, build nothing")
    c.add_argument("--no-cache", action="store_true", help="rebuild every step")
    c.add_argument("--cache-dir", help="cache folder (default ~/.cache/edgeopt or $EDGEOPT_CACHE_DIR)")
    c.add_argument("--quiet", action="store_true", help="no progress display")

    i = sub.add_parser("inspect", help="inputs, outputs, op histogram, parameters and size of a model")
    i.add_argument("model")
    i.add_argument("--target", help="also check op coverage for this target")
    i.add_argument("--input-shape", action="append", default=[])
    i.add_argument("--nodes", action="store_true",
                   help="list every node of an ONNX model by name and op type (the names exclude_nodes takes)")
    i.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("targets", help="list target profiles and whether they run here")
    sub.add_parser("schema", help="print the JSON schema of the compile config")

    d = sub.add_parser("demo", help="train a small CNN on scikit-learn digits and compile it for every target")
    d.add_argument("--out", default="edgeopt-demo")
    d.add_argument("--quiet", action="store_true")
    return p


def _compile_config(args: argparse.Namespace) -> Any:
    from edgeopt.config import CompileConfig, parse_input_shapes

    flags: dict[str, Any] = {}
    if args.model:
        flags["model"] = args.model
    simple = {
        "target": args.target,
        "out": args.out,
        "data": args.data,
        "calibration": args.calibration,
        "train": args.train,
        "variants": args.variant,
        "quantize": args.quantize,
        "calibration_method": args.calibration_method,
        "calibration_samples": args.calibration_samples,
        "bias_correction": args.bias_correction,
        "max_accuracy_drop": args.max_accuracy_drop,
        "metric": args.metric,
        "eval_samples": args.eval_samples,
        "seed": args.seed,
        "cache_dir": args.cache_dir,
        "distill_hard_weight": args.distill_hard_weight,
        "explore": True if args.explore else None,
    }
    flags.update({k: v for k, v in simple.items() if v is not None})
    if args.input_shape:
        flags["input_shapes"] = parse_input_shapes(args.input_shape)
    if args.no_cache:
        flags["cache"] = False
    latency = {k: v for k, v in {"threads": args.threads, "iters": args.iters}.items() if v is not None}
    if args.config:
        cfg = CompileConfig.from_yaml(args.config)
        if cfg.explore is not None:  # --explore must not replace the grid the file declares
            flags.pop("explore", None)
        if latency:
            flags["latency"] = {**cfg.latency.model_dump(), **latency}
        return CompileConfig.build({**cfg.model_dump(), **flags}, source="--config and flags")
    if latency:
        flags["latency"] = latency
    if "model" not in flags:
        from edgeopt.errors import ConfigError

        raise ConfigError("no model given", "pass MODEL (an .onnx, .pt2 or package.module:factory) or --config")
    return CompileConfig.build(flags, source="flags")


def cmd_compile(args: argparse.Namespace) -> int:
    from edgeopt.api import compile as compile_model
    from edgeopt.fileio import write_text_atomic

    cfg = _compile_config(args)
    if args.save_config:
        write_text_atomic(args.save_config, cfg.to_yaml())
        print(f"wrote {args.save_config}")
        return 0
    result = compile_model(config=cfg, dry_run=args.dry_run, progress=not args.quiet)
    if args.dry_run:
        print(f"dry run ok: {len(result.plan)} variant(s) would be built")
        for pv in result.plan:
            print(f"  {pv.name}: " + " -> ".join(p.name for p in pv.pipeline.passes))
        return 0
    report = result.report or {}
    from edgeopt.report.markdown import render_markdown

    print(render_markdown(report).split("\n## ")[0].rstrip())
    print(f"\nwrote {Path(cfg.out) / 'report.json'}")
    failed = [v for v in report.get("variants", []) if v["status"].startswith("failed")]
    return 1 if failed and len(failed) == len(report.get("variants", [])) - 1 else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from edgeopt.inspect import inspect_model

    info = inspect_model(args.model, target=args.target, input_shapes=args.input_shape, nodes=args.nodes)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    from edgeopt.inspect import render_inspect

    print(render_inspect(info))
    return 0


def cmd_targets(_: argparse.Namespace) -> int:
    from edgeopt.targets import list_targets

    targets = list_targets()
    width = max(map(len, targets), default=0)
    for name, t in targets.items():
        why = t.availability()
        state = "available" if why is None else f"unavailable here: {why}"
        variants = ", ".join(v.name for v in t.variants)
        print(f"{name:{width}s} {t.description} [backend {t.backend}; variants: {variants}] — {state}")
    return 0


def cmd_schema(_: argparse.Namespace) -> int:
    from edgeopt.config import CompileConfig

    print(json.dumps(CompileConfig.model_json_schema(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeopt.demo import run_demo

    run_demo(Path(args.out), progress=not args.quiet)
    return 0


COMMANDS = {
    "compile": cmd_compile,
    "inspect": cmd_inspect,
    "targets": cmd_targets,
    "schema": cmd_schema,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2; --debug shows the traceback."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except EdgeoptError as exc:
        if args.debug:
            raise
        print(f"edgeopt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
