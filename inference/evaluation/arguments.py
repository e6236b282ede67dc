"""The command-line options of the evaluation protocol (EVALUATION.md), shared by ``evaluate_interests``
(offline) and ``evaluate_serving`` (through the served path), so both read a split the same way."""

from __future__ import annotations

from argparse import ArgumentParser

__all__ = ["evaluation_arguments_add"]


def evaluation_arguments_add(parser: ArgumentParser) -> None:
    """``--events --format --split --quantile --horizon --seed --json --dataset``."""
    parser.add_argument("--events", required=True, help="generic events CSV, or a MovieLens directory")
    parser.add_argument("--format", choices=("generic", "movielens"), default="generic")
    parser.add_argument("--split", choices=("time", "user"), default="time")
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write the JSON report here")
    parser.add_argument("--dataset", default=None, help="name in the report (default: the file name)")
