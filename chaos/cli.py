"""``redis-resilience``: the pack's tools over reports (the ``locust -f locustfile.py`` entry stays the main one).

    redis-resilience compare BASELINE CURRENT [--alpha 0.01] [--min-change 20] [--min-change-ms 50]
                             [--markdown PATH] [--junit PATH] [--force] [--allow-version-change]
    redis-resilience history DIR -o trend.html [--baseline-runs 3]
    redis-resilience matrix PROFILE --clients config/clients.yaml [--preset NAME]... [-u 20] [-t 30] [--repeat 1]
                            [--client-versions redis==8.1.0 redis==8.2.0 ...] [--envs-dir DIR]
                            [--servers redis valkey] [--max-cells 24]

Exit codes: 0 no regression, 4 a regression, 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from recovery.compare import (
    CompareError,
    Comparison,
    check_comparable,
    check_versions,
    compare,
    console_lines,
    load_reports,
    markdown,
)
from recovery.history import write_history
from recovery.junit import Case, suite, xml_text
from recovery.report import ReportError, write_atomically
from recovery.verdict import EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redis-resilience", description="Tools over redis-resilience reports.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmp = commands.add_parser("compare", help="compare a current run with a baseline: exit 4 on a regression")
    cmp.add_argument("baseline", help="a JSON report, or a directory of them (pooled)")
    cmp.add_argument("current", help="a JSON report, or a directory of them (pooled)")
    cmp.add_argument("--alpha", type=float, default=0.01, help="significance of the tests (default 0.01)")
    cmp.add_argument(
        "--min-change", type=float, default=20.0, help="smallest relative change that counts, in percent (default 20)"
    )
    cmp.add_argument(
        "--min-change-ms", type=float, default=50.0, help="smallest change of recovery that counts, in ms (default 50)"
    )
    cmp.add_argument("--markdown", metavar="PATH", help="also write the comparison as Markdown (a PR comment)")
    cmp.add_argument("--junit", metavar="PATH", help="also write it as JUnit XML (a testcase per judged figure)")
    cmp.add_argument("--force", action="store_true", help="compare reports of different profiles or targets")
    cmp.add_argument(
        "--allow-version-change",
        action="store_true",
        help="compare runs of other redis-py, hiredis or server versions (every verdict line says so)",
    )
    hist = commands.add_parser("history", help="every report of a directory, as a trend page (HTML)")
    hist.add_argument("directory", help="a directory of JSON reports")
    hist.add_argument("-o", "--output", default="trend.html", help="the HTML page to write (default trend.html)")
    hist.add_argument("--baseline-runs", type=int, default=3, help="how many first runs make the baseline (3)")
    mat = commands.add_parser("matrix", help="one profile, once per client configuration, version or server, ranked")
    mat.add_argument("profile", help="the profile (its faults run the same in every cell: the seed is fixed)")
    mat.add_argument("--clients", help="the presets (default config/clients.yaml)")
    mat.add_argument("--preset", action="append", help="run only this preset (repeatable); default: all")
    mat.add_argument("-u", "--users", type=int, default=20, help="users per cell (20)")
    mat.add_argument("-t", "--seconds", type=int, default=30, help="seconds per cell (30)")
    mat.add_argument("--repeat", type=int, default=1, help="runs per cell, to see the spread (1)")
    mat.add_argument("--seed", type=int, default=1, help="the chaos seed of every cell (1)")
    mat.add_argument("-o", "--output", default="out/matrix", help="the cells' reports and matrix.json (out/matrix)")
    mat.add_argument(
        "--client-versions",
        nargs="+",
        metavar="NAME==VERSION",
        help="run each cell once per requirement, in an environment of requirements.lock with that one "
        "requirement changed (built with uv, cached); with --clients/--preset: presets x versions",
    )
    mat.add_argument(
        "--servers",
        nargs="+",
        choices=["redis", "valkey"],
        help="run each cell once per server, on a fresh embedded target of that server (target.server); "
        "the profile's target must be embedded",
    )
    mat.add_argument(
        "--max-cells",
        type=int,
        default=24,
        help="refuse a matrix of more cells than this (presets x versions x servers x repeats; 24)",
    )
    mat.add_argument(
        "--envs-dir",
        default=os.environ.get("REDIS_RESILIENCE_ENVS"),
        help="where the environments of --client-versions are cached "
        "(env REDIS_RESILIENCE_ENVS; default ~/.cache/redis-resilience/envs)",
    )
    return parser


def junit(comparison: Comparison) -> str:
    """The comparison as JUnit XML: a testcase per judged figure, a failure per regression."""
    cases = [
        Case(
            f"{f.fault} {f.figure}",
            "compare",
            f"REGRESSION {f.fault} {f.figure}: {f.baseline} -> {f.current} ({f.why}){comparison.across}"
            if f.regression
            else None,
            kind="regression",
        )
        for f in comparison.findings
    ]
    change = comparison.version_change
    return xml_text(suite("redis-resilience compare", cases, {"version_change": change} if change else None))


def run_compare(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1 or args.min_change < 0 or args.min_change_ms < 0:
        raise CompareError("--alpha must be between 0 and 1, --min-change and --min-change-ms at least 0")
    baseline, current = load_reports(args.baseline), load_reports(args.current)
    if not args.force:
        check_comparable(baseline, current)
    if not args.allow_version_change:
        check_versions(baseline, current)
    comparison = compare(baseline, current, args.alpha, args.min_change / 100, args.min_change_ms)
    for line in console_lines(comparison):
        print(line)
    for path, text in ((args.markdown, markdown), (args.junit, junit)):
        if path:
            try:
                write_atomically(path, text(comparison))
            except OSError as exc:
                raise CompareError(f"{path}: cannot write it: {exc.strerror or exc}") from None
    return comparison.exit_code


def run_history(args: argparse.Namespace) -> int:
    if args.baseline_runs < 1:
        raise CompareError("--baseline-runs must be at least 1")
    skipped: list[str] = []
    try:
        runs = write_history(args.directory, args.output, args.baseline_runs, skipped)
    except OSError as exc:
        raise CompareError(f"{args.output}: cannot write it: {exc.strerror or exc}") from None
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    print(f"wrote {args.output} ({runs} runs{f', {len(skipped)} skipped' if skipped else ''})")
    return 0


def run_matrix_command(args: argparse.Namespace) -> int:
    from chaos.matrix import run_matrix
    from chaos.matrix_table import spread_lines, table_lines

    if args.users < 1 or args.seconds < 1 or args.repeat < 1 or args.max_cells < 1:
        raise CompareError("-u, -t, --repeat and --max-cells must be at least 1")
    cells, result = run_matrix(
        args.profile,
        args.clients,
        args.preset,
        args.users,
        args.seconds,
        args.repeat,
        args.output,
        args.seed,
        args.client_versions,
        args.envs_dir,
        args.servers,
        args.max_cells,
    )
    for line in [*table_lines(cells), *spread_lines(cells)]:
        print(line)
    print(f"wrote {result}")
    return 0


COMMANDS = {"compare": run_compare, "history": run_history, "matrix": run_matrix_command}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ReportError as exc:  # CompareError included
        sys.stderr.write(f"redis-resilience: {exc}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
