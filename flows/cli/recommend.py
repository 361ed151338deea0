"""``loyalty recommend``: top-k products per user from an interactions CSV, and the models' evaluation."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.console import err, out
from flows.cli.console import fail as _fail

recommend_app = typer.Typer(
    help="Product recommendations from interactions (user_id,item_id,timestamp[,weight]).",
    invoke_without_command=True,
)
SPLITS = ("leave-last-10", "time")


@recommend_app.callback()
def recommend(
    ctx: typer.Context,
    interactions: Annotated[Path | None, typer.Option(help="Training CSV: user_id,item_id,timestamp[,weight].")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Products per user.")] = 10,
    out_file: Annotated[Path | None, typer.Option("--out", help="CSV to write: user_id,rank,item_id,score.")] = None,
    model: Annotated[str, typer.Option(help="popular, item_knn, ease or auto (ease if the catalog fits).")] = "auto",
) -> None:
    """Write the top-k products for every user of the interactions, leaving out what each user already has."""
    if ctx.invoked_subcommand is not None:
        return
    if interactions is None or out_file is None:
        raise _fail("give --interactions TRAIN.csv and --out RECS.csv (or a subcommand: evaluate)")
    from tasks.recommend.evaluate import InteractionsError, read_interactions_csv
    from tasks.recommend.models import RecommendError, recommend_csv

    try:
        train = read_interactions_csv(interactions)
        recs = recommend_csv(train, k, model)
    except (InteractionsError, RecommendError) as exc:
        raise _fail(str(exc)) from None
    out_file.parent.mkdir(parents=True, exist_ok=True)
    recs.to_csv(out_file, index=False)
    err.print(f"{recs['user_id'].nunique():,} users x top {k} ({model}) -> {out_file}")


@recommend_app.command()
def evaluate(
    train_file: Annotated[Path | None, typer.Option("--train", help="Training CSV.")] = None,
    test_file: Annotated[Path | None, typer.Option("--test", help="Test CSV (what users did next).")] = None,
    interactions: Annotated[Path | None, typer.Option(help="One CSV to split (instead of --train/--test).")] = None,
    split: Annotated[str, typer.Option(help="How to split --interactions: leave-last-10 or time (80/20).")] = (
        "leave-last-10"
    ),
    k: Annotated[int, typer.Option("--k", min=1, help="Products per user.")] = 10,
    models: Annotated[str, typer.Option(help="Comma-separated models to score.")] = "popular,item_knn,ease",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Score every model (popularity included): precision, recall, NDCG and MAP at k, coverage, seconds."""
    from tasks.recommend.evaluate import (
        InteractionsError,
        read_interactions_csv,
        split_leave_last,
        split_time,
    )
    from tasks.recommend.evaluate import (
        evaluate as score,
    )
    from tasks.recommend.models import MODELS, RecommendError, recommend_csv

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise _fail(f"unknown model(s) {', '.join(unknown)}: use {', '.join(MODELS)}")
    try:
        if interactions is not None:
            if split not in SPLITS:
                raise _fail(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
            frame = read_interactions_csv(interactions)
            train, test = split_leave_last(frame, 10) if split == "leave-last-10" else split_time(frame, 0.8)
        elif train_file is not None and test_file is not None:
            train, test = read_interactions_csv(train_file), read_interactions_csv(test_file)
        else:
            raise _fail("give --train and --test, or --interactions with --split")
        catalog = int(train["item_id"].nunique())
        results: dict[str, dict[str, float]] = {}
        for name in names:
            started = time.perf_counter()
            recs = recommend_csv(train, k, name)
            seconds = time.perf_counter() - started
            results[name] = score(recs, test, k, catalog) | {"seconds": round(seconds, 3)}
    except (InteractionsError, RecommendError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({"k": k, "catalog": catalog, "models": results}) + "\n")
        return
    table = RichTable("model", f"precision@{k}", f"recall@{k}", f"NDCG@{k}", f"MAP@{k}", "coverage", "users", "s")
    for name, m in results.items():
        table.add_row(
            name,
            *(f"{m[key]:.4f}" for key in ("precision", "recall", "ndcg", "map", "coverage")),
            f"{int(m['users']):,}",
            f"{m['seconds']:.2f}",
        )
    out.print(table)
