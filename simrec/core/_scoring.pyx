# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -ffp-contract=off
"""The compiled scoring kernel; ``simrec.core.scoring`` holds its pure-Python twin.

Arithmetic contract shared with the twin, so both give bit-identical results:
``acc[j] += w * <double>score`` in float64, query items in the order given, each row's
neighbours in storage order, never fused into an FMA (``-ffp-contract=off``). Candidates
are the items reached by at least one neighbour edge, not excluded, with ``acc > 0``;
they are ranked by score descending, ties by index ascending.

The dense accumulator, the "touched" list and the flags are kept per thread (threaded
WSGI workers call this concurrently) and are all-zero between calls, so a call costs
O(edges visited + candidates * log n), not O(n_items). The hot loops run without the GIL.
"""

import threading

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t

cnp.import_array()

cdef uint8_t TOUCHED = 1
cdef uint8_t EXCLUDED = 2


cdef class _Workspace:
    """Per-thread buffers sized for ``capacity`` items; zero between calls."""

    cdef readonly Py_ssize_t capacity
    cdef double[::1] acc
    cdef uint8_t[::1] flags
    cdef int32_t[::1] touched
    cdef int32_t[::1] candidates

    def __cinit__(self, Py_ssize_t capacity):
        self.capacity = capacity
        self.acc = np.zeros(capacity, dtype=np.float64)
        self.flags = np.zeros(capacity, dtype=np.uint8)
        self.touched = np.empty(capacity, dtype=np.int32)
        self.candidates = np.empty(capacity, dtype=np.int32)


_local = threading.local()


cdef _Workspace _workspace(Py_ssize_t n_items):
    ws = getattr(_local, "workspace", None)
    if ws is None or (<_Workspace>ws).capacity < n_items:
        ws = _Workspace(max(n_items, 1))
        _local.workspace = ws
    return <_Workspace>ws


cdef inline bint _worse(double sa, int32_t ia, double sb, int32_t ib) noexcept nogil:
    """True when candidate a ranks after candidate b (lower score, or same and larger index)."""
    return sa < sb or (sa == sb and ia > ib)


cdef void _sift_down(double* hs, int32_t* hi, Py_ssize_t size, Py_ssize_t pos) noexcept nogil:
    """Restore the heap whose root is the worst-ranked kept candidate."""
    cdef Py_ssize_t child, worst
    cdef double ts
    cdef int32_t ti
    while True:
        worst = pos
        child = 2 * pos + 1
        if child < size and _worse(hs[child], hi[child], hs[worst], hi[worst]):
            worst = child
        child += 1
        if child < size and _worse(hs[child], hi[child], hs[worst], hi[worst]):
            worst = child
        if worst == pos:
            return
        ts = hs[pos]; hs[pos] = hs[worst]; hs[worst] = ts
        ti = hi[pos]; hi[pos] = hi[worst]; hi[worst] = ti
        pos = worst


def score_csr(
    const int64_t[::1] indptr,
    const int32_t[::1] indices,
    const float[::1] scores,
    const int32_t[::1] query_items,
    const double[::1] query_weights,
    Py_ssize_t n,
    const int32_t[::1] excluded,
):
    """Top-``n`` ``(indices int32, scores float64)`` for a validated query, best first.

    The caller (``simrec.core.scoring.score``) checks that every index is in range and
    that the query has no duplicates; this function trusts it.
    """
    cdef Py_ssize_t n_items = indptr.shape[0] - 1
    cdef Py_ssize_t nq = query_items.shape[0]
    cdef Py_ssize_t nx = excluded.shape[0]
    cdef _Workspace ws = _workspace(n_items)
    cdef double* acc = &ws.acc[0]
    cdef uint8_t* flags = &ws.flags[0]
    cdef int32_t* touched = &ws.touched[0]
    cdef int32_t* cand = &ws.candidates[0]
    cdef Py_ssize_t n_touched = 0, n_cand = 0, k = 0, q, t, end
    cdef int64_t p, hi_p
    cdef int32_t i, j, ti
    cdef double w, ts
    cdef double* out_s
    cdef int32_t* out_i

    if n < 0:
        raise ValueError("n must be >= 0")
    try:
        with nogil:
            for t in range(nx):
                flags[excluded[t]] |= EXCLUDED
            for q in range(nq):
                i = query_items[q]
                w = query_weights[q]
                hi_p = indptr[i + 1]
                for p in range(indptr[i], hi_p):
                    j = indices[p]
                    if flags[j] & EXCLUDED:
                        continue
                    if not (flags[j] & TOUCHED):
                        flags[j] |= TOUCHED
                        touched[n_touched] = j
                        n_touched += 1
                    acc[j] += w * <double>scores[p]
            for t in range(n_touched):
                j = touched[t]
                if acc[j] > 0:
                    cand[n_cand] = j
                    n_cand += 1
        k = n if n < n_cand else n_cand
        out_idx = np.empty(k, dtype=np.int32)
        out_score = np.empty(k, dtype=np.float64)
        if k:
            out_i = <int32_t*>cnp.PyArray_DATA(out_idx)
            out_s = <double*>cnp.PyArray_DATA(out_score)
            with nogil:
                # Keep the k best in a heap whose root is the worst kept one.
                for t in range(k):
                    out_i[t] = cand[t]
                    out_s[t] = acc[cand[t]]
                for t in range(k // 2 - 1, -1, -1):
                    _sift_down(out_s, out_i, k, t)
                for t in range(k, n_cand):
                    j = cand[t]
                    if _worse(out_s[0], out_i[0], acc[j], j):
                        out_s[0] = acc[j]
                        out_i[0] = j
                        _sift_down(out_s, out_i, k, 0)
                # Heap sort: moving the worst to the end leaves the array best first.
                for end in range(k - 1, 0, -1):
                    ts = out_s[0]; out_s[0] = out_s[end]; out_s[end] = ts
                    ti = out_i[0]; out_i[0] = out_i[end]; out_i[end] = ti
                    _sift_down(out_s, out_i, end, 0)
        return out_idx, out_score
    finally:
        with nogil:
            for t in range(n_touched):
                j = touched[t]
                acc[j] = 0.0
                flags[j] = 0
            for t in range(nx):
                flags[excluded[t]] = 0
