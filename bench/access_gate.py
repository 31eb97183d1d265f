"""What the gate in front of the API (``simrec.serving.access.Gate``) costs per request.

In-process, no HTTP: the same ``/recommendations`` and ``/similar`` requests (histories of
1-10 popular-skewed skus of the S-size synthetic model with a catalog) answered by

* ``api``: ``ServingApp.respond`` alone (the baseline, measured in the same run);
* ``private``: ``Gate.respond`` in private mode (no keys, no origins: a pass-through);
* ``public``: ``Gate.respond`` with a keys file of 100 shops, two allowed origins, an
  ``Origin`` and ``X-Api-Key`` header on every request and a rate limit it never reaches.

Reported: p50/p99 per request and each mode's mean against ``api``'s. Ratios, not timed
asserts; the machine may be loaded. Writes ``.bench/access_gate.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cached_model, percentiles, time_calls, write_results  # noqa: E402

from simrec.config import Settings  # noqa: E402
from simrec.serving import access, api  # noqa: E402
from simrec.serving.api import ServingApp  # noqa: E402

ORIGIN = "https://shop.example"


def requests(skus: list[str], count: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for k in range(count):
        if k % 5 == 0:
            out.append(("/similar", f"sku={skus[int(len(skus) * rng.random() ** 2)]}&n=10"))
        else:
            picks = [skus[int(len(skus) * rng.random() ** 2)] for _ in range(rng.randint(1, 10))]
            out.append(("/recommendations", f"browsed={','.join(picks)}&n=10"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="1,000 requests")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else args.requests
    root, snapshot = cached_model("S")
    tenant = snapshot.metadata["tenant"]
    work = Path(tempfile.mkdtemp(prefix="simrec-gate-"))
    keys = work / "keys.json"
    keys.write_text(json.dumps({f"shop-{i}": access.key_hash(f"key-{i}") for i in range(100)}))
    base = dict(models_uri=root, tenant=tenant, model_refresh_seconds=0)
    api.HOLDERS.clear()
    service = ServingApp(Settings(**base))
    service.start()
    private = access.Gate(service, Settings(**base))
    public = access.Gate(service, Settings(
        **base, api_keys=str(keys), allowed_origins=f"{ORIGIN},https://www.shop.example",
        rate_limit_per_minute=1e9, rate_limit_burst=10**9,
    ))  # fmt: skip
    reqs = requests(snapshot.skus, count)
    headers = {"origin": ORIGIN, "x-api-key": "key-57", "host": "recommend.example"}
    for path, query in reqs[:20]:  # every mode answers the same
        want = service.respond("GET", path, query)
        assert private.respond("GET", path, query, {}) == want
        status, _, body = public.respond("GET", path, query, headers)
        assert (status, body) == (want[0], want[2]) and status == 200
    modes = {
        "api": (lambda p, q: service.respond("GET", p, q)),
        "private": (lambda p, q: private.respond("GET", p, q, {})),
        "public": (lambda p, q: public.respond("GET", p, q, headers)),
    }
    results = {name: percentiles(time_calls(fn, reqs)) for name, fn in modes.items()}
    baseline = results["api"]["mean_us"]
    lines = [
        "# access gate: cost per request (in-process, S model, same run)",
        "",
        "| mode | p50 us | p99 us | mean us | mean / api |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ratio = r["mean_us"] / baseline
        r["ratio_to_api"] = ratio
        lines.append(f"| {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | "
                     f"{r['mean_us']:.1f} | {ratio:.3f} |")  # fmt: skip
    write_results("access_gate", {"requests": count, "modes": results}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
