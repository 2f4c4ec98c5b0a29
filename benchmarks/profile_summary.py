"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the server's time goes.

``sse_fanout.py --profile DIR`` records the server with py-spy (``pip install py-spy`` into the
venv; it needs ptrace permission) while the job reports; this prints, per function, its *self*
share (samples where it was the innermost frame) and its *inclusive* share (samples where it was
anywhere on the stack), as a percentage of all non-idle samples. Idle samples (the loop waiting
in epoll) are not recorded by py-spy without ``--idle``, so ``busy`` = samples / (rate x seconds).

    .venv/bin/python benchmarks/profile_summary.py /tmp/prof/jobstream-1000sub-10ms.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*?)(?::(?P<line>\d+))?\)$")


def frame_name(frame: str, with_line: bool) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    where = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "src/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    if with_line and m["line"]:
        where += f":{m['line']}"
    return f"{m['func']} ({where})"


def summarise(path: Path, top: int, with_line: bool) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f, with_line) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self %   function"]
    out += [f"{100 * n / total:6.1f}   {name}" for name, n in own.most_common(top)]
    out += ["", "inclusive %   function"]
    out += [f"{100 * n / total:6.1f}   {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="Top functions of a py-spy raw profile.")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--lines", action="store_true", help="keep line numbers apart")
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.lines))


if __name__ == "__main__":
    main()
