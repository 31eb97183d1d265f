# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: language = c++
# distutils: extra_compile_args = -fopenmp -ffp-contract=off
# distutils: extra_link_args = -fopenmp
"""Compiled kernel of the single-machine similarity engine: sparse A^T A + top-K per item.

``simrec.core.similarity`` holds its NumPy/scipy twin (the reference). Arithmetic contract
shared with the twin, so both give bit-identical results:

* item ``i``'s row of A^T A is accumulated exactly as scipy's CSR product does it: for
  each user ``u`` of column ``i`` (ascending), for each item ``j`` of row ``u`` (ascending),
  ``acc[j] += a_ui * a_uj`` in float64, never fused into an FMA (``-ffp-contract=off``);
  the entries' DIMSUM weights ``w = 1 / p`` likewise into ``wsum[j] += w_ui * w_uj``;
* users = ``wsum`` (``simrec.core.dimsum``: the Horvitz-Thompson estimate);
  score = ``clip(acc, 0, 1)``, shrunk as
  ``(score * users) / (users + shrinkage)`` when ``shrinkage > 0``
  (``simrec.core.quality.shrink``), then ``rint(score * 1e12) / 1e12`` (NumPy's
  ``round(x, 12)``);
* neighbors ``j != i`` are ranked by score descending, ties by ``j`` ascending, and the
  first ``k`` kept.

Items are independent, so they are spread over OpenMP threads (dynamic schedule: a few
popular items have long rows); each thread owns dense value and weight accumulators,
seen flags, a touched list and a candidate buffer of ``n_items`` entries, all zero
between items. Results go to
fixed slots of ``k`` per item, so the output does not depend on the thread count.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport rint
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport abort, calloc, free, malloc


cdef struct Cand:
    double score
    int32_t j


cdef extern from "<algorithm>" namespace "std" nogil:
    void sort[Iter, Compare](Iter first, Iter last, Compare comp)
    void nth_element[Iter, Compare](Iter first, Iter nth, Iter last, Compare comp)


cdef inline bint _before(const Cand& a, const Cand& b) noexcept nogil:
    return a.score > b.score or (a.score == b.score and a.j < b.j)


cdef inline double _score_units(double x, double users, double shrinkage) noexcept nogil:
    """The score in units of 1e-12, an integer: ``rint(score * 1e12)``. Ranking by it is
    ranking by the rounded score (``/ 1e12`` is strictly increasing on integers below
    2**40), and the division is paid only for the ``k`` kept."""
    if x < 0.0:
        x = 0.0
    elif x > 1.0:
        x = 1.0
    if shrinkage > 0.0:
        x = (x * users) / (users + shrinkage)
    return rint(x * 1e12)


cdef int64_t _item(
    int32_t i,
    const int64_t* t_indptr, const int32_t* t_indices, const double* t_data,
    const double* t_weights,
    const int64_t* indptr, const int32_t* indices, const double* data, const double* weights,
    int64_t k, double shrinkage,
    double* acc, double* wsum, int32_t* cnt, int32_t* touched, Cand* cands,
    int64_t* out_count, int32_t* out_nbr, double* out_score, double* out_users,
    int64_t slot,
) noexcept nogil:
    """One item's row of A^T A, its top-``k`` written to ``slot``; returns pairs j > i."""
    cdef int64_t pu, pj, n_touched = 0, n = 0, t, pairs = 0, m, base
    cdef int32_t u, j
    cdef double v, w
    for pu in range(t_indptr[i], t_indptr[i + 1]):
        u = t_indices[pu]
        v = t_data[pu]
        w = t_weights[pu]
        for pj in range(indptr[u], indptr[u + 1]):
            j = indices[pj]
            if cnt[j] == 0:
                touched[n_touched] = j
                n_touched += 1
            acc[j] += v * data[pj]
            wsum[j] += w * weights[pj]
            cnt[j] = 1
    for t in range(n_touched):
        j = touched[t]
        if j != i:
            if j > i:
                pairs += 1
            cands[n].score = _score_units(acc[j], wsum[j], shrinkage)
            cands[n].j = j
            n += 1
    m = n if n < k else k
    if m > 0:
        if n > k:
            nth_element(cands, cands + (m - 1), cands + n, _before)
        sort(cands, cands + m, _before)
    base = slot * k
    for t in range(m):
        j = cands[t].j
        out_nbr[base + t] = j
        out_score[base + t] = cands[t].score / 1e12
        out_users[base + t] = wsum[j]
    out_count[slot] = m
    for t in range(n_touched):
        j = touched[t]
        acc[j] = 0.0
        wsum[j] = 0.0
        cnt[j] = 0
    return pairs


def topk_kernel(
    const int64_t[::1] t_indptr,
    const int32_t[::1] t_indices,
    const double[::1] t_data,
    const double[::1] t_weights,
    const int64_t[::1] indptr,
    const int32_t[::1] indices,
    const double[::1] data,
    const double[::1] weights,
    int64_t k,
    double shrinkage,
    int n_threads,
    int64_t[::1] out_count,
    int32_t[::1] out_nbr,
    double[::1] out_score,
    double[::1] out_users,
    int64_t[::1] out_pairs,
    int32_t first=0,
    int32_t last=-1,
):
    """Top-``k`` per item of A^T A for A (users x items) given as CSR and as CSC
    (``t_*``: items x users), each entry with its DIMSUM weight, for the items
    ``first <= i < last`` (``last = -1``: every
    item to the end; the Spark job gives each task one range). Outputs, with
    ``s = i - first``: ``out_count[s]`` neighbors of item ``i`` in slots
    ``[s*k, s*k + out_count[s])`` of ``out_nbr/out_score/out_users``; ``out_pairs[s]``:
    items ``j > i`` co-occurring with ``i``."""
    cdef int32_t n_items = <int32_t>(t_indptr.shape[0] - 1)
    cdef int32_t i, n_out
    cdef double* acc
    cdef double* wsum
    cdef int32_t* cnt
    cdef int32_t* touched
    cdef Cand* cands
    if last < 0:
        last = n_items
    if not 0 <= first <= last <= n_items:
        raise ValueError(f"item range [{first}, {last}) outside [0, {n_items}]")
    n_out = last - first
    if n_out <= 0 or k <= 0:
        return
    if out_nbr.shape[0] < <int64_t>n_out * k or out_count.shape[0] < n_out:
        raise ValueError("output buffers too small")
    if (t_weights.shape[0] != t_data.shape[0] or weights.shape[0] != data.shape[0]
            or out_pairs.shape[0] < n_out):
        raise ValueError("weights must match data; out_pairs too small")
    with nogil, parallel(num_threads=max(1, n_threads)):
        acc = <double*>calloc(n_items, sizeof(double))
        wsum = <double*>calloc(n_items, sizeof(double))
        cnt = <int32_t*>calloc(n_items, sizeof(int32_t))
        touched = <int32_t*>malloc(n_items * sizeof(int32_t))
        cands = <Cand*>malloc(n_items * sizeof(Cand))
        if acc == NULL or wsum == NULL or cnt == NULL or touched == NULL or cands == NULL:
            abort()
        for i in prange(first, last, schedule="dynamic", chunksize=8):
            out_pairs[i - first] = _item(
                i,
                &t_indptr[0], &t_indices[0], &t_data[0], &t_weights[0],
                &indptr[0], &indices[0], &data[0], &weights[0],
                k, shrinkage,
                acc, wsum, cnt, touched, cands,
                &out_count[0], &out_nbr[0], &out_score[0], &out_users[0],
                i - first,
            )
        free(acc)
        free(wsum)
        free(cnt)
        free(touched)
        free(cands)
