"""``run``'s events per second from two source trees (before and after a change), alternated.

    python benchmarks/compare_trees.py BEFORE_TREE AFTER_TREE [--events 100000] [--rounds 3]

Each tree is a checkout of the repository with its extensions built in place (``git worktree add``,
then copy or build the ``.so`` files). Loads the events once (10 features, one partition), then per
round runs ``pipeline_vs_bare.pipeline`` (the same timing as every pipeline figure) in a fresh process
for each tree and each of: kafka-python at-least-once, librdkafka at-least-once, librdkafka
exactly-once. Prints the medians and the after/before ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_topics import delete_at_exit, unique
from pipeline_vs_bare import load

HERE = Path(__file__).resolve().parent
ALOS, EOS = "at-least-once", "exactly-once"
CONTENDERS = [("kafka-python", ALOS), ("confluent", ALOS), ("confluent", EOS)]
ONE_RUN = (
    "import sys; sys.path.insert(0, sys.argv[1]); import stream_neuron, pipeline_vs_bare as bench; "
    "assert stream_neuron.__file__.startswith(sys.argv[2]), stream_neuron.__file__; "
    "print(bench.pipeline(sys.argv[3], sys.argv[4], int(sys.argv[5]), 'sgd', sys.argv[6], sys.argv[7]))"
)


def one_run(tree: Path, bootstrap: str, topic: str, events: int, client: str, guarantee: str) -> float:
    arguments = [str(HERE), str(tree), bootstrap, topic, str(events), guarantee, client]
    done = subprocess.run(
        [sys.executable, "-c", ONE_RUN, *arguments],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        cwd=tree.parent,  # not a tree: the current directory would come first on the path
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    trees = [args.before.resolve(), args.after.resolve()]
    topic = unique("bench-trees")
    load(args.bootstrap_servers, topic, args.events, 10)
    rates: dict[tuple[Path, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for tree in trees:
            for client, guarantee in CONTENDERS:
                rate = one_run(tree, args.bootstrap_servers, topic, args.events, client, guarantee)
                rates.setdefault((tree, client, guarantee), []).append(rate)
    print(f"{args.events:,} events, 10 features, one partition, medians of {args.rounds} alternated rounds")
    print("| run | before events/s | after events/s | after / before |\n|---|---|---|---|")
    for client, guarantee in CONTENDERS:
        before, after = (statistics.median(rates[(tree, client, guarantee)]) for tree in trees)
        print(f"| {client}, {guarantee} | {before:,.0f} | {after:,.0f} | {after / before:.2f}x |")


if __name__ == "__main__":
    main()
