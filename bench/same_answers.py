"""Every answer byte for byte: the check behind a request-path speed-up (issue 17.3).

Builds thousands of requests over the M-size bench model (the histories of
``bench/serving.py`` at 1, 10 and 100 items, the mixed load of ``bench/http_load.py``,
``/similar`` and ``/trending`` with every filter, the original endpoint, bad requests)
and records what ``Gate.respond`` answers (status, headers, body). ``--write FILE`` keeps
them (run it on the code before a change), ``--compare FILE`` asks the code under test
the same requests and counts the answers that differ (exit 1 if any).
Run: ``python bench/same_answers.py --write /tmp/before.jsonl`` on the old tree, then
``python bench/same_answers.py --compare /tmp/before.jsonl`` on the new one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import cached_model, histories  # noqa: E402
from http_load import request_paths  # noqa: E402

ACTIONS = ("browsed", "basket", "purchased")


def requests(snapshot) -> list[tuple[str, str]]:  # noqa: ANN001 - a ModelSnapshot
    """``(path, query)`` of every request checked (deterministic)."""
    rng = np.random.default_rng(11)
    skus, n_items = snapshot.skus, snapshot.n_items
    out: list[tuple[str, str]] = []
    for size, count in ((1, 1000), (10, 2000), (100, 300)):
        for h in histories(n_items, size, count, seed=100 + size):
            lists: dict[str, list[str]] = {a: [] for a in ACTIONS}
            for i in h:
                lists[ACTIONS[int(rng.integers(3))]].append(skus[i])
            if rng.random() < 0.1:  # a repeated sku (weights summed)
                lists["purchased"].append(skus[h[0]])
            query = "&".join(f"{k}={','.join(v)}" for k, v in lists.items() if v)
            out.append(("/recommendations", query + f"&n={int(rng.integers(1, 60))}"))
    out += [tuple(p.split("?", 1)) for p in request_paths(snapshot, 4000, seed=5)]  # type: ignore[misc]
    categories = [f"cat{k:02d}" for k in (0, 3, 17, 39)] + ["nosuch"]
    filters = ["", "&in_stock_only=true", "&same_category=true", "&price_within=1.5",
               "&price_within=2&in_stock_only=1", "&exclude_seen=false&same_category=yes",
               *(f"&category={c}" for c in categories)]  # fmt: skip
    for k in range(600):
        i = int(n_items * rng.random() ** 1.5)
        f = filters[k % len(filters)]
        similar_f = f.replace("exclude_seen=false&", "")
        out.append(("/similar", f"sku={skus[i]}&n={1 + k % 40}{similar_f}"))
        hist = ",".join(skus[int(n_items * rng.random() ** 1.5)] for _ in range(1 + k % 7))
        out.append(("/recommendations", f"browsed={hist}&n={1 + k % 30}{f}"))
        escaped = hist.replace(",", "%2C+")
        out.append(("/recommendations", f"basket=%20{escaped}&exclude={skus[i]}{f}"))
        out.append(("/make_recommendation", f"purchased={hist}&n={1 + k % 20}&extra=1"))
    for f in filters:
        out.append(("/trending", f"n=25{f}" if "same" not in f and "price" not in f else "n=5"))
    out += [
        ("/recommendations", "browsed=unknown1,unknown2&n=10"),  # the fallback
        ("/recommendations", "browsed=unknown1&category=cat05&n=10"),
        ("/recommendations", ""),
        ("/recommendations", "n=0&browsed=x"),
        ("/recommendations", "n=abc"),
        ("/recommendations", "purchase=x"),
        ("/recommendations", "browsed=" + "x" * 300),
        ("/recommendations", "n=3&n=4&browsed=" + skus[1]),
        ("/recommendations", "browsed=" + skus[2] + "&in_stock_only=maybe"),
        ("/recommendations", "browsed=" + skus[2] + "&price_within=0.5"),
        ("/similar", "sku="),
        ("/similar", "sku=nosuch"),
        ("/healthz", ""),
        ("/nosuch", ""),
    ]
    return out


def answers(root: str, tenant: str, reqs: list[tuple[str, str]]) -> list[dict]:
    from simrec.config import Settings
    from simrec.serving.access import Gate
    from simrec.serving.api import ServingApp

    app = ServingApp(Settings(models_uri=root, tenant=tenant, max_n=100))
    assert app.holder.get() is not None
    gate = Gate(app)
    out = []
    for path, query in reqs:
        status, headers, body = gate.respond("GET", path, query, {"host": "x"})
        out.append({"path": path, "query": query, "status": status,
                    "headers": [list(h) for h in headers],
                    "body": body.decode()})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--compare", type=Path)
    args = parser.parse_args(argv)
    root, snapshot = cached_model("M")
    reqs = requests(snapshot)
    got = answers(root, snapshot.metadata["tenant"], reqs)
    if args.write:
        args.write.write_text("\n".join(json.dumps(a) for a in got) + "\n")
        print(f"wrote {len(got)} answers to {args.write}")
        return 0
    before = [json.loads(line) for line in args.compare.read_text().splitlines()]
    if len(before) != len(got):
        print(f"DIFFERENT: {len(before)} answers recorded, {len(got)} now")
        return 1
    differ = [(b, a) for b, a in zip(before, got, strict=True)
              if [b[k] for k in ("status", "headers", "body")]
              != [a[k] for k in ("status", "headers", "body")]]  # fmt: skip
    statuses = {s: sum(a["status"] == s for a in got) for s in sorted({a["status"] for a in got})}
    print(f"{len(got) - len(differ)} of {len(got)} answers byte-identical (statuses {statuses})")
    for b, a in differ[:5]:
        print(f"  {a['path']}?{a['query'][:120]}\n    before {b['body'][:300]}\n    now    "
              f"{a['body'][:300]}")  # fmt: skip
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
