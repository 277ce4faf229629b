"""The `hfadapt` command: a thin shell over the Python API, with no logic or defaults of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from hfadapt.errors import HfadaptError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfadapt", description="Adapt pretrained language models to a new task or language."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _recipe_commands(sub)
    _run_commands(sub)
    _advise_command(sub)
    return parser


def _recipe_commands(sub) -> None:
    """The commands that take a recipe."""
    p = sub.add_parser("finetune", help="fine-tune a checkpoint as a recipe says")
    p.add_argument("recipe", help="a YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. training.learning_rate=3e-5 adapt.lora.r=16")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from its newest complete checkpoint")
    _time_limit_option(p)
    p.add_argument(
        "--seeds",
        help="run once per seed, e.g. --seeds 1,2,3: OUTPUT_DIR/seed-N/ each, and the mean and "
        "sd of every metric in OUTPUT_DIR/seeds.json",
    )

    for name, text in (
        ("tokenizer", "train the recipe's tokenizer on its corpus and report its fit beside the checkpoint's"),
        ("pretrain", "run the recipe's tokenizer and masked-LM pretraining stages"),
        ("retrain", "run every stage: tokenizer, vocabulary and embeddings, pretraining, fine-tuning"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("recipe")
        p.add_argument("overrides", nargs="*")
        p.add_argument(
            "--resume", action="store_true", help="continue a stopped stage from its newest complete checkpoint"
        )
        _time_limit_option(p)
        if name == "retrain":
            p.add_argument(
                "--seeds",
                help="pretrain once, then fine-tune once per seed, e.g. --seeds 1,2,3: OUTPUT_DIR/finetuned/seed-N/ "
                "each, and the mean and sd of every metric in OUTPUT_DIR/finetuned/seeds.json",
            )

    p = sub.add_parser(
        "search", help="search hyperparameters: one fine-tuning run per trial, chosen by the validation metric"
    )
    p.add_argument("recipe", help="a YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every trial, e.g. data.max_train_samples=2000")
    p.add_argument(
        "--space",
        action="append",
        required=True,
        metavar="KEY=SPEC",
        help="a recipe key and what to try, once per key: LOW..HIGH (:log for a log scale) or choices a,b,c; "
        "e.g. --space training.learning_rate=1e-4..1e-3:log --space adapt.lora.r=4,8,16",
    )
    p.add_argument("--trials", type=int, required=True, help="how many runs (trial-000, trial-001, ...)")
    p.add_argument("--output", help="the search's folder (default: the recipe's output.dir)")
    p.add_argument("--resume", action="store_true", help="continue a stopped search, keeping its finished trials")
    _time_limit_option(p)

    p = sub.add_parser(
        "prepare", help="tokenize the recipe's data (and pack its pretraining corpus) once, ahead of training"
    )
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")

    p = sub.add_parser("validate", help="check a recipe and print it resolved, without loading any weight")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument(
        "--accelerate-config",
        help="also check that this machine can run this Accelerate config (see recipes/accelerate/)",
    )


def _time_limit_option(p) -> None:
    p.add_argument(
        "--stop-after-minutes",
        type=float,
        metavar="N",
        help="save a checkpoint and stop (exit 130) after N minutes; the same command with --resume continues, "
        "for N more (output.stop_after_minutes)",
    )


def _run_commands(sub) -> None:
    """The commands that use a finished run."""
    p = sub.add_parser("predict", help="label texts with a finished run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of a finished run")
    p.add_argument("texts", nargs="*", help="texts to label (or use --file)")
    p.add_argument("--file", help="a .txt (one text a line), .csv or .jsonl file of texts")
    p.add_argument("--column", default="text", help="the text column of a CSV or JSONL file")
    p.add_argument("--encoding", default="utf-8", help="the --file's text encoding, e.g. latin-1")
    p.add_argument("--output", help="write the predictions here (.jsonl or .csv) instead of standard output")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto (the default): bf16 where the device runs it fast (a GPU from Ampere on, a CPU with "
        "AVX512-BF16 or AMX), fp32 elsewhere",
    )

    p = sub.add_parser(
        "push", help="upload a finished run to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)"
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of a finished run")
    p.add_argument("--repo-id", required=True, help="NAME or ORG/NAME; created if missing")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="push to this branch (created if missing)")

    p = sub.add_parser("export", help="export a finished run to ONNX, checked against PyTorch by ONNX Runtime")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of a finished run")
    p.add_argument("--output", help="where model.onnx and its tokenizer go (default: RUN_DIR/onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    p.add_argument("--quantize", choices=["int8"], help="also write model.int8.onnx, checked on the run's test split")

    p = sub.add_parser("evaluate", help="score a finished run on a data set")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of a finished run")
    p.add_argument(
        "data", nargs="?", help="a data source (file, folder, Hub id, builtin:NAME); by default the run's own"
    )
    p.add_argument(
        "--split", default="test", help="train, validation or test (made as in training when the source lacks it)"
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides of the data section, e.g. data.encoding=latin-1")


def _advise_command(sub) -> None:
    p = sub.add_parser(
        "advise", help="how to adapt a checkpoint to a data set: tokenizer fit, short pilots of each strategy, a recipe"
    )
    p.add_argument("--model", required=True, help="a checkpoint folder, a Hub id, or builtin:minilm")
    p.add_argument("--data", required=True, help="a file, a folder, a Hub data set id, or builtin:NAME")
    p.add_argument("--text-column", help="the column of texts (a recipe's data.text_column)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=int, help="training steps for all pilots together (at least 50)")
    budget.add_argument(
        "--budget-minutes", type=float, help="minutes for the fit, probe and pilots; each pilot stops at its share"
    )
    p.add_argument("--run-minutes", type=float, help="fit the recommended recipe to M minutes here (cut or lengthened)")
    p.add_argument("--output", help="write advice.md, advice.json, pilots.png and recommended.yaml in this folder")
    p.add_argument("--overwrite", action="store_true", help="replace the --output folder once the new advice is ready")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value for every pilot and the recipe, e.g. data.label_column=stars "
        "training.per_device_train_batch_size=16",
    )


def main(argv: list[str] | None = None) -> int:
    from hfadapt import ranks

    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides after an option (`finetune R --seeds 1,2 training.seed=3`): argparse
    # ends the positionals at the option and leaves the rest over
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Under `accelerate launch` the other ranks keep quiet: one log, one set of progress bars.
    logging.basicConfig(
        level=logging.INFO if ranks.is_main() else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not ranks.is_main():
        import datasets

        datasets.disable_progress_bars()
        sys.stdout = open(os.devnull, "w")  # results are printed once, by the main rank
    try:
        return _run(args)
    except HfadaptError as e:
        from hfadapt.runs.resume import Interrupted

        print(f"hfadapt: {'stopped' if isinstance(e, Interrupted) else 'error'}: {e}", file=sys.stderr)
        if isinstance(e, Interrupted):
            print(f"hfadapt: to continue: {_resume_command(argv)}", file=sys.stderr)
        return 130 if isinstance(e, Interrupted) else 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training began: one line, no traceback
        resumable = args.command in RESUMABLE
        kept = f"; checkpoints saved so far are kept (continue with: {_resume_command(argv)})" if resumable else ""
        print(f"hfadapt: interrupted{kept}", file=sys.stderr)
        return 130


RESUMABLE = ("finetune", "search", "tokenizer", "pretrain", "retrain")  # the commands that take --resume


def _resume_command(argv: list[str] | None) -> str:
    """The command line that was run, with --resume: it continues the stopped run."""
    import shlex

    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
    return shlex.join(["hfadapt", *given, "--resume"])


def _run_overrides(args) -> list[str]:
    """The overrides with what --resume and --stop-after-minutes ask for."""
    overrides = list(args.overrides) + (["output.resume=true"] if args.resume else [])
    if args.stop_after_minutes is not None:
        overrides.append(f"output.stop_after_minutes={args.stop_after_minutes}")
    return overrides


def _run(args) -> int:
    from hfadapt.launch import check_environment

    if args.command in ("finetune", "search", "pretrain", "retrain", "prepare"):
        check_environment()
    commands = {
        "validate": _validate,
        "finetune": _finetune,
        "search": _search,
        "tokenizer": _retrain,
        "pretrain": _retrain,
        "retrain": _retrain,
        "prepare": _prepare,
        "predict": _predict,
        "push": _push,
        "export": _export,
        "evaluate": _evaluate,
        "advise": _advise,
    }
    commands[args.command](args)
    return 0


def _validate(args) -> None:
    from hfadapt.launch import check_accelerate_config
    from hfadapt.model.pretrained import check_local
    from hfadapt.recipe import dump_recipe, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    check_local(recipe)  # a local checkpoint's files and shapes, without loading a weight
    if args.accelerate_config:
        check_accelerate_config(args.accelerate_config)
    print(dump_recipe(recipe, comments=True), end="")


def _finetune(args) -> None:
    import hfadapt

    overrides = _run_overrides(args)
    if args.seeds is not None:
        from hfadapt.training.seeds import parse_seeds

        _print_seeds(hfadapt.finetune_seeds(args.recipe, parse_seeds(args.seeds), overrides))
        return
    _print_summary(hfadapt.finetune(args.recipe, overrides).metrics)


def _search(args) -> None:
    from hfadapt.training.hparam_search import report, search

    overrides = _run_overrides(args)
    result = search(args.recipe, args.space, args.trials, overrides, output_dir=args.output)
    print(report(result), end="")
    print(f"written to {result['output_dir']}: search.md, trials.json, trials.png, best.yaml, trial-NNN/")


def _retrain(args) -> None:
    from hfadapt.retraining.pipeline import retrain

    until = {"tokenizer": "tokenizer", "pretrain": "pretrained", "retrain": "finetuned"}[args.command]
    seeds = None
    if getattr(args, "seeds", None) is not None:
        from hfadapt.training.seeds import parse_seeds

        seeds = parse_seeds(args.seeds)
    overrides = _run_overrides(args)
    done = retrain(args.recipe, overrides, until=until, seeds=seeds)
    stages = done if isinstance(done, dict) else done.stages  # a Run once a fine-tuned model exists
    print(json.dumps({k: v for k, v in stages.items() if k != "finetuned"}, indent=2, ensure_ascii=False))
    if "finetuned" in stages:
        (_print_summary if seeds is None else _print_seeds)(stages["finetuned"])


def _prepare(args) -> None:
    from hfadapt.training.preparation import prepare

    print(json.dumps(prepare(args.recipe, args.overrides), indent=2, ensure_ascii=False))


def _predict(args) -> None:
    from hfadapt.runs.inference import predict, read_texts

    if bool(args.texts) == bool(args.file):
        raise HfadaptError("predict: give texts as arguments or --file FILE (one of the two)")
    if args.output and Path(args.output).suffix.lower() not in (".jsonl", ".csv"):
        raise HfadaptError(f"--output {args.output}: write predictions to a .jsonl or .csv file")
    if args.output and not Path(args.output).absolute().parent.is_dir():
        raise HfadaptError(f"--output {args.output}: the folder {Path(args.output).parent} does not exist; create it")
    if args.batch_size < 1:
        raise HfadaptError(f"--batch-size: must be 1 or more, got {args.batch_size}")
    texts = args.texts or read_texts(args.file, args.column, args.encoding)
    done = predict(args.run_dir, texts, batch_size=args.batch_size, precision=args.precision)
    _write_predictions(done, args.output)


def _push(args) -> None:
    from hfadapt.runs.hub import push

    print(push(args.run_dir, args.repo_id, private=args.private, revision=args.revision))


def _export(args) -> None:
    from hfadapt.runs.export import export_onnx

    print(json.dumps(export_onnx(args.run_dir, args.output, args.overwrite, quantize=args.quantize), indent=2))


def _evaluate(args) -> None:
    from hfadapt.runs.inference import evaluate

    data, overrides = args.data, list(args.overrides)
    if data is not None and re.match(r"\w+(\.\w+)+=", data) and not Path(data).exists():  # no DATA: overrides
        data, overrides = None, [data, *overrides]
    print(json.dumps(evaluate(args.run_dir, data, args.split, overrides=overrides), indent=2))


def _advise(args) -> None:
    from hfadapt.advice.pipeline import advise
    from hfadapt.advice.report import cost_line, render

    options = {k: getattr(args, k) for k in ("text_column", "budget_steps", "budget_minutes", "run_minutes")}
    advice = advise(args.model, args.data, args.output, **options, overrides=args.overrides, overwrite=args.overwrite)
    print(render(advice))
    if args.output:
        print(f"written to {args.output}: {', '.join(sorted(path.name for path in Path(args.output).iterdir()))}")
    print(cost_line(advice))


def _print_summary(results: dict) -> None:
    """The TF-IDF baseline's line, then the run's: the test split's main metric, and its worst class."""
    from hfadapt.model import baseline, metrics

    main_metric = results["main_metric"]
    line = f"test {main_metric}: {results['test'][f'test_{main_metric}']:.4f}"
    worst = metrics.worst_class((results.get("per_class") or {}).get("test"))
    if worst is not None:
        line += f" (worst class: {worst[0]}, F1 {worst[1]:.4f})"
    print("\n".join(filter(None, (baseline.summary(results.get("baseline")), line))))


def _print_seeds(summary: dict) -> None:
    seeds = summary["seeds"]
    print(f"{'metric':<28} {'mean':>8} {'sd':>8}  " + "  ".join(f"{'seed ' + str(s):>8}" for s in seeds))
    for split in ("validation", "test"):
        for key, row in summary[split].items():
            print(f"{key:<28} {row['mean']:>8.4f} {row['sd']:>8.4f}  " + "  ".join(f"{v:>8.4f}" for v in row["values"]))


def _write_predictions(rows: list[dict], path: str | None) -> None:
    if path is None:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    target = Path(path)
    partial = target.with_name(target.name + ".incomplete")  # moved into place once written whole
    if target.suffix.lower() == ".csv":
        import csv

        with partial.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            keys = list(rows[0]) if rows else ["text"]
            writer.writerow(keys)
            for row in rows:
                writer.writerow(
                    [
                        json.dumps(row[k], ensure_ascii=False) if isinstance(row[k], (list, dict)) else row[k]
                        for k in keys
                    ]
                )
    else:
        partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    partial.replace(target)


if __name__ == "__main__":
    sys.exit(main())
