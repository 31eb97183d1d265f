"""The cold-item content model against hand-computed oracles: TF-IDF rows and cosines on
a 5-item catalog (numpy, dense), the top-k order, price bands, the blend rule at 0, few
and many shoppers, and blended query rows scored by the real scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simrec.core import content
from simrec.core.content import (
    ContentIndex,
    ContentParams,
    cooc_weight,
    item_tokens,
    price_band,
    tfidf,
)
from simrec.core.scoring import make_scorer

TOL = 1e-12
CATALOG = {
    "sku": ["a", "b", "c", "d", "e"],
    "category": ["Shoes", "shoes", "bags", "bags", None],
    "brand": ["acme", "globex", "acme", None, "acme"],
    "price": [10.0, 12.0, 95.0, 0.0, 1000.0],
    "title": ["Red runner red", "Blue runner", "Red tote", "tote bag", None],
}
# Tokens by hand (title words lower-cased, repeats counted; price 0 has no band).
TOKENS = {
    "a": {"category:shoes": 1, "brand:acme": 1, "price:4": 1, "title:red": 2, "title:runner": 1},
    "b": {"category:shoes": 1, "brand:globex": 1, "price:4": 1, "title:blue": 1,
          "title:runner": 1},
    "c": {"category:bags": 1, "brand:acme": 1, "price:7": 1, "title:red": 1, "title:tote": 1},
    "d": {"category:bags": 1, "title:tote": 1, "title:bag": 1},
    "e": {"brand:acme": 1, "price:12": 1},
}  # fmt: skip


def oracle() -> tuple[np.ndarray, list[str]]:
    """Dense TF-IDF straight from the documented formula."""
    vocab = sorted({t for tokens in TOKENS.values() for t in tokens})
    n = len(TOKENS)
    tf = np.array([[TOKENS[s].get(t, 0) for t in vocab] for s in CATALOG["sku"]], dtype=float)
    df = (tf > 0).sum(axis=0)
    x = tf * (np.log((1 + n) / (1 + df)) + 1)
    return x / np.linalg.norm(x, axis=1, keepdims=True), vocab


def test_tokens_and_price_bands() -> None:
    for r, sku in enumerate(CATALOG["sku"]):
        tokens = item_tokens(CATALOG, r)
        assert {t: tokens.count(t) for t in tokens} == TOKENS[sku]
    # floor(log10(p) * 4): 10 -> 4, 12 -> 4, 17.78 -> 4 (just under 10**1.25), 18 -> 5.
    assert [price_band(p, 4) for p in (10, 12, 17.7, 18, 1, 0.5)] == [4, 4, 4, 5, 0, -2]
    assert [price_band(p, 4) for p in (0, -3, None, "x", math.nan, math.inf)] == [None] * 6


def test_tfidf_matches_the_dense_oracle() -> None:
    x, vocab = tfidf(CATALOG)
    expected, expected_vocab = oracle()
    assert vocab == expected_vocab
    np.testing.assert_allclose(x.toarray(), expected, rtol=0, atol=TOL)
    np.testing.assert_allclose((x @ x.T).toarray(), expected @ expected.T, rtol=0, atol=TOL)


def cosine_oracle(model_skus: list[str], exponent: float, popularity: np.ndarray):
    """Per catalog sku: model items of its category (without one: all) ranked by
    cosine * prior desc, then index asc."""
    x, _ = oracle()
    row = {s: r for r, s in enumerate(CATALOG["sku"])}
    prior = (np.log1p(popularity) / np.log1p(popularity.max())) ** exponent
    category = {s: c.lower() if c else None
                for s, c in zip(CATALOG["sku"], CATALOG["category"], strict=True)}  # fmt: skip
    out = {}
    for s in CATALOG["sku"]:
        cand = [
            (float(np.float32(np.float32(x[row[s]] @ x[row[m]]) * np.float32(prior[i]))), i)
            for i, m in enumerate(model_skus)
            if m != s and m in row and category[s] in (None, category[m])
        ]
        out[s] = [(i, v) for v, i in sorted(cand, key=lambda t: (-t[0], t[1])) if v > 0]
    return out


@pytest.mark.parametrize("exponent", [0.0, 2.0])
def test_neighbors_are_the_top_cosines_over_model_items(exponent: float) -> None:
    model_skus = ["a", "b", "c", "e", "x"]  # d is catalog-only, x has no catalog row
    popularity = np.array([5.0, 1.0, 3.0, 8.0, 2.0])
    params = ContentParams(top_k=3, popularity_exponent=exponent)
    index = ContentIndex.build(CATALOG, model_skus, popularity, params)
    expected = cosine_oracle(model_skus, exponent, popularity)
    for sku in CATALOG["sku"]:
        cols, sims = index.content_row(sku)
        want = expected[sku][:3]
        assert cols.tolist() == [i for i, _ in want], sku
        np.testing.assert_allclose(sims, [v for _, v in want], rtol=1e-6, atol=1e-7)
    # Same category only ("Shoes" and "shoes" are one): a's only candidate is b; e has
    # no category, so any model item may be one; x has no catalog row, so nobody lists it.
    assert index.content_row("a")[0].tolist() == [1]
    assert set(index.content_row("e")[0].tolist()) == {0, 2}  # the other acme items
    assert index.content_row("d")[0].tolist() == [2]
    assert index.content_row("x")[0].size == 0


def test_blend_weight_at_no_few_and_many_shoppers() -> None:
    p = ContentParams(blend_k=4.0, warm_users=20)
    assert cooc_weight(0, p) == 0.0
    assert cooc_weight(4, p) == 0.5
    assert cooc_weight(12, p) == 0.75
    assert cooc_weight(19, p) == 19 / 23
    assert cooc_weight(20, p) == 1.0 and cooc_weight(1e6, p) == 1.0
    with pytest.raises(ValueError, match="blend_k"):
        ContentParams(blend_k=0)


def test_blended_rows_mix_events_and_attributes() -> None:
    model_skus = ["a", "b", "c", "e"]
    popularity = np.array([3.0, 100.0, 0.0, 5.0])  # a few shoppers, b warm
    params = ContentParams(blend_k=1.0, warm_users=50, popularity_exponent=0.0)
    index = ContentIndex.build(CATALOG, model_skus, popularity, params)
    cooc = (np.array([3, 1], dtype=np.int32), np.array([0.5, 0.25], dtype=np.float32))
    # Warm: the co-occurrence row itself, untouched.
    cols, sims, reasons = index.blended_row("b", 1, cooc)
    assert cols is cooc[0] and sims is cooc[1] and reasons == ["events", "events"]
    # a, 3 shoppers: w = 3/4 on events, 1/4 on attributes.
    content_cols, content_sims = index.content_row("a")
    want: dict[int, float] = {}
    for j, s in zip(cooc[0].tolist(), cooc[1].tolist(), strict=True):
        want[j] = want.get(j, 0.0) + 0.75 * s
    for j, s in zip(content_cols.tolist(), content_sims.tolist(), strict=True):
        want[j] = want.get(j, 0.0) + 0.25 * s
    cols, sims, reasons = index.blended_row("a", 0, cooc)
    assert cols.tolist() == sorted(want, key=lambda j: (-want[j], j))
    np.testing.assert_allclose(sims, [want[j] for j in cols.tolist()], rtol=1e-6)
    both = set(cooc[0].tolist()) & set(content_cols.tolist())
    for j, reason in zip(cols.tolist(), reasons, strict=True):
        assert reason == ("events+attributes" if j in both else
                          "events" if j in cooc[0].tolist() else "attributes")  # fmt: skip
    # Not in the model: attributes only.
    cols, sims, reasons = index.blended_row("d", None, (cooc[0][:0], cooc[1][:0]))
    assert cols.tolist() == index.content_row("d")[0].tolist() and set(reasons) == {"attributes"}


def test_query_rows_score_like_the_sum_of_blended_rows() -> None:
    model_skus = ["a", "b", "c", "e"]
    popularity = np.array([3.0, 100.0, 1.0, 5.0])
    index = ContentIndex.build(CATALOG, model_skus, popularity)
    rows = {0: ([1, 2], [0.5, 0.25]), 1: ([0], [0.5]), 2: ([0], [0.25]), 3: ([], [])}

    def neighbors(i: int):
        return np.array(rows[i][0], dtype=np.int32), np.array(rows[i][1], dtype=np.float32)

    skus, weights = ["d", "a", "b"], np.array([1.0, 2.0, 0.5])
    indptr, indices, scores = index.query_rows(skus, {s: i for i, s in enumerate(model_skus)},
                                               neighbors)  # fmt: skip
    scorer = make_scorer(indptr, indices, scores, n_cols=len(model_skus))
    got = scorer.score(np.arange(3, dtype=np.int32), weights, 10)
    want: dict[int, float] = {}
    for sku, w in zip(skus, weights.tolist(), strict=True):
        i = model_skus.index(sku) if sku in model_skus else None
        cols, sims, _ = index.blended_row(
            sku,
            i,
            neighbors(i) if i is not None else (np.zeros(0, np.int32), np.zeros(0, np.float32)),
        )
        for j, s in zip(cols.tolist(), sims.tolist(), strict=True):
            want[j] = want.get(j, 0.0) + w * s
    assert [j for j, _ in got] == sorted(want, key=lambda j: (-want[j], j))
    np.testing.assert_allclose([s for _, s in got], [want[j] for j, _ in got], rtol=1e-12)


def test_params_from_model_metadata() -> None:
    assert ContentParams.from_metadata({}) == content.DEFAULT_PARAMS
    assert ContentParams.from_metadata({"content": {"warm_users": 0}}).warm_users == 0
    with pytest.raises(ValueError, match="unknown content parameter"):
        ContentParams.from_metadata({"content": {"warm": 3}})


def _cold_and_warm() -> tuple:
    """A model of 4 items (a, c cold; b, e warm) over CATALOG, with its CSR."""
    model_skus = ["a", "b", "c", "e"]
    popularity = np.array([3.0, 100.0, 0.0, 60.0])
    index = ContentIndex.build(CATALOG, model_skus, popularity)
    indptr = np.array([0, 2, 3, 3, 4])
    indices = np.array([1, 3, 0, 1], dtype=np.int32)
    scores = np.array([0.5, 0.25, 0.5, 0.125], dtype=np.float32)
    return model_skus, popularity, index, indptr, indices, scores


def test_blended_matrix_replaces_only_cold_rows() -> None:
    model_skus, popularity, index, indptr, indices, scores = _cold_and_warm()
    out_ptr, out_idx, out_scores = index.blended_matrix(model_skus, indptr, indices, scores)
    for i, sku in enumerate(model_skus):
        lo, hi = indptr[i], indptr[i + 1]
        want = index.blended_row(sku, i, (indices[lo:hi], scores[lo:hi]))
        a, b = out_ptr[i], out_ptr[i + 1]
        assert out_idx[a:b].tolist() == want[0].tolist(), sku
        assert out_scores[a:b].tobytes() == want[1].tobytes(), sku
        if popularity[i] >= index.params.warm_users:
            assert out_idx[a:b].tolist() == indices[lo:hi].tolist()
            assert out_scores[a:b].tobytes() == scores[lo:hi].tobytes()
    # a (3 shoppers): b scores 3/8 * 0.5 + 5/8 * content(a, b); c has no candidate in
    # its category (d, the other bag, has no events) and no events: an empty row.
    (b_score,) = index.content_row("a")[1].tolist()
    assert out_idx[0:2].tolist() == [1, 3]
    np.testing.assert_allclose(out_scores[0], 3 / 8 * 0.5 + 5 / 8 * b_score, rtol=1e-6)
    assert out_ptr[3] == out_ptr[2]
    warm = ContentIndex.build(CATALOG, model_skus, np.full(4, 100.0))
    assert warm.blended_matrix(model_skus, indptr, indices, scores) is None


def test_served_row_reads_the_blended_matrix_as_blended_row_gives_it() -> None:
    model_skus, popularity, index, indptr, indices, scores = _cold_and_warm()
    assert index.served_row(0) is None  # nothing stored yet: the caller blends
    blended = index.blended_matrix(model_skus, indptr, indices, scores, sources=True)
    assert blended is not None and blended[3].dtype == np.uint8
    index.blended = blended  # type: ignore[assignment]
    for i, sku in enumerate(model_skus):
        lo, hi = indptr[i], indptr[i + 1]
        cols, sims, reasons = index.blended_row(sku, i, (indices[lo:hi], scores[lo:hi]))
        got = index.served_row(i)
        assert got is not None
        assert got[0].tolist() == cols.tolist() and got[1].tobytes() == sims.tobytes(), sku
        assert got[2] == reasons, sku
    assert set(index.served_row(0)[2]) <= set(content.REASON_OF_SOURCES.values())  # type: ignore[index]
