# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -ffp-contract=off
"""The compiled scoring kernel; ``simrec.core.scoring`` holds its pure-Python twin.

Arithmetic contract shared with the twin, so both give bit-identical results:
``acc[j] += w * <double>score`` in float64, query items in the order given, each row's
neighbors in storage order, never fused into an FMA (``-ffp-contract=off``). Candidates
are the items reached by at least one neighbor edge, not excluded, allowed by the mask
(when one is given), with ``acc > 0``; they are ranked by score descending, ties by
index ascending.

``Scorer`` holds raw pointers to a CSR matrix (rows: query items; columns: candidate
items, ``n_cols`` of them) so a call pays no buffer acquisition for the model, only cheap
type checks of the small query arrays: a request costs O(edges visited + candidates *
log n), a few microseconds, never O(n_items). The dense accumulator, the "touched" list,
the flags and the result positions are kept per thread (threaded WSGI workers call this
concurrently) and are all-zero between calls. The hot loops run without the GIL.
"""

import threading

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.math cimport fabs, floor
from libc.stdlib cimport free, malloc

cnp.import_array()

cdef uint8_t TOUCHED = 1
cdef uint8_t EXCLUDED = 2


cdef class _Workspace:
    """Per-thread buffers sized for ``capacity`` columns; zero between calls."""

    cdef readonly Py_ssize_t capacity
    cdef double[::1] acc
    cdef uint8_t[::1] flags
    cdef int32_t[::1] touched
    cdef int32_t[::1] candidates
    cdef int32_t[::1] position

    def __cinit__(self, Py_ssize_t capacity):
        self.capacity = capacity
        self.acc = np.zeros(capacity, dtype=np.float64)
        self.flags = np.zeros(capacity, dtype=np.uint8)
        self.touched = np.empty(capacity, dtype=np.int32)
        self.candidates = np.empty(capacity, dtype=np.int32)
        self.position = np.zeros(capacity, dtype=np.int32)


_local = threading.local()


cdef _Workspace _workspace(Py_ssize_t n_cols):
    ws = getattr(_local, "workspace", None)
    if ws is None or (<_Workspace>ws).capacity < n_cols:
        ws = _Workspace(max(n_cols, 1))
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


_DTYPES = {
    cnp.NPY_INT64: "int64", cnp.NPY_INT32: "int32", cnp.NPY_FLOAT32: "float32",
    cnp.NPY_FLOAT64: "float64", cnp.NPY_UINT8: "uint8",
}


cdef inline void* _data(object arr, int typenum, Py_ssize_t* length, str name) except NULL:
    """Raw pointer of a 1-d C-contiguous array of ``typenum`` (no buffer acquisition)."""
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{name} must be a numpy array")
    cdef cnp.ndarray a = <cnp.ndarray>arr
    if cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISCARRAY_RO(a):
        raise TypeError(f"{name} must be a 1-d C-contiguous {_DTYPES[typenum]} array")
    length[0] = cnp.PyArray_DIM(a, 0)
    if length[0] == 0:
        return <void*>1  # never dereferenced; NULL means "error" here
    return cnp.PyArray_DATA(a)


cdef class Scorer:
    """Top-n scoring over one CSR matrix; see the module docstring."""

    cdef object _indptr, _indices, _scores
    cdef const int64_t* indptr
    cdef const int32_t* indices
    cdef const float* scores
    cdef readonly Py_ssize_t n_rows
    cdef readonly Py_ssize_t n_cols

    def __cinit__(self, indptr, indices, scores, Py_ssize_t n_cols=-1):
        cdef Py_ssize_t n_ptr, n_idx, n_sc, p
        self._indptr, self._indices, self._scores = indptr, indices, scores
        self.indptr = <const int64_t*>_data(indptr, cnp.NPY_INT64, &n_ptr, "indptr")
        self.indices = <const int32_t*>_data(indices, cnp.NPY_INT32, &n_idx, "indices")
        self.scores = <const float*>_data(scores, cnp.NPY_FLOAT32, &n_sc, "scores")
        if n_ptr < 1 or self.indptr[0] != 0 or self.indptr[n_ptr - 1] != n_idx or n_sc != n_idx:
            raise ValueError("indptr must start at 0 and end at len(indices) == len(scores)")
        self.n_rows = n_ptr - 1
        self.n_cols = self.n_rows if n_cols < 0 else n_cols
        cdef int bad = 0
        # Without the GIL: a server builds the scorer of a new model version in its
        # loader thread, and requests keep running meanwhile (one pass over ~10^7 items).
        with nogil:
            for p in range(self.n_rows):
                if self.indptr[p + 1] < self.indptr[p]:
                    bad = 1
                    break
            if not bad:
                for p in range(n_idx):
                    if self.indices[p] < 0 or self.indices[p] >= self.n_cols:
                        bad = 2
                        break
        if bad == 1:
            raise ValueError("indptr must be non-decreasing")
        if bad == 2:
            raise ValueError("neighbor index out of range")

    cpdef list score(self, items, weights, Py_ssize_t n, excluded=None, allowed=None):
        """Top-``n`` ``[(column, score)]``, best first.

        ``items`` (int32 rows) and ``weights`` (float64) are the query; ``excluded``
        (int32 columns) are never candidates; ``allowed`` (uint8 per column, or None)
        keeps only columns with a non-zero flag.
        """
        cdef Py_ssize_t nq, nw, nx = 0, na = 0, n_touched = 0, n_cand = 0, k = 0, q, t, end
        cdef const int32_t* qi = <const int32_t*>_data(items, cnp.NPY_INT32, &nq, "items")
        cdef const double* qw = <const double*>_data(weights, cnp.NPY_FLOAT64, &nw, "weights")
        cdef const int32_t* xi = NULL
        cdef const uint8_t* ok = NULL
        if excluded is not None:
            xi = <const int32_t*>_data(excluded, cnp.NPY_INT32, &nx, "excluded")
        if allowed is not None:
            ok = <const uint8_t*>_data(allowed, cnp.NPY_UINT8, &na, "allowed")
            if na != self.n_cols:
                raise ValueError("allowed must have one flag per column")
        if nq != nw:
            raise ValueError("items and weights must have the same length")
        if n < 0:
            raise ValueError("n must be >= 0")
        for q in range(nq):
            if qi[q] < 0 or qi[q] >= self.n_rows:
                raise ValueError(f"query item index out of range 0..{self.n_rows - 1}")
        for t in range(nx):
            if xi[t] < 0 or xi[t] >= self.n_cols:
                raise ValueError(f"excluded item index out of range 0..{self.n_cols - 1}")
        cdef _Workspace ws = _workspace(self.n_cols)
        cdef double* acc = &ws.acc[0]
        cdef uint8_t* flags = &ws.flags[0]
        cdef int32_t* touched = &ws.touched[0]
        cdef int32_t* cand = &ws.candidates[0]
        cdef const int64_t* indptr = self.indptr
        cdef const int32_t* indices = self.indices
        cdef const float* scores = self.scores
        cdef int64_t p, hi_p
        cdef int32_t i, j, ti
        cdef double w, ts
        cdef double* out_s = NULL
        cdef int32_t* out_i = NULL
        cdef list result = []
        try:
            with nogil:
                for t in range(nx):
                    flags[xi[t]] |= EXCLUDED
                for q in range(nq):
                    i = qi[q]
                    w = qw[q]
                    hi_p = indptr[i + 1]
                    for p in range(indptr[i], hi_p):
                        j = indices[p]
                        if flags[j] & EXCLUDED:
                            continue
                        if ok != NULL and not ok[j]:
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
            if k:
                out_s = <double*>malloc(k * sizeof(double))
                out_i = <int32_t*>malloc(k * sizeof(int32_t))
                if out_s == NULL or out_i == NULL:
                    raise MemoryError()
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
                for t in range(k):
                    result.append((out_i[t], out_s[t]))
            return result
        finally:
            free(out_s)
            free(out_i)
            with nogil:
                for t in range(n_touched):
                    j = touched[t]
                    acc[j] = 0.0
                    flags[j] = 0
                for t in range(nx):
                    flags[xi[t]] = 0

    def contributions(self, items, weights, list results, Py_ssize_t k):
        """Per result column, its ``k`` largest ``(query position, w * sim)`` terms.

        Ordered by contribution descending, ties by query position ascending; terms
        <= 0 are left out. ``results`` are distinct columns (a ``score`` result).
        """
        return self._explain(items, weights, results, k, None, None, 0, None)

    def recommend(self, items, weights, Py_ssize_t n, excluded=None, allowed=None,
                  Py_ssize_t k=3, list labels=None, int digits=4, tuple keys=None):
        """``score`` and, per result, why: ``[(column, score, [(label, share)])]``.

        ``because`` lists the result's ``k`` largest terms (as ``contributions``) as
        ``(labels[query position], term / score)``, the share rounded to ``digits``
        decimals exactly as Python's ``round`` does; ``labels`` defaults to the query
        items. ``k == 0``: no because (empty lists). ``keys=(label_key, share_key)``:
        each entry as the dict ``{label_key: label, share_key: share}`` instead (the
        shape an answer serialises, built here at C speed).
        """
        cdef list scored = self.score(items, weights, n, excluded, allowed)
        cdef list out = []
        cdef Py_ssize_t r
        if not scored or k == 0:
            for r in range(len(scored)):
                out.append((scored[r][0], scored[r][1], []))
            return out
        if labels is None:
            labels = items.tolist()
        cdef list because = self._explain(items, weights, scored, k, scored, labels, digits,
                                          keys)
        for r in range(len(scored)):
            out.append((scored[r][0], scored[r][1], because[r]))
        return out

    cdef list _explain(self, items, weights, list results, Py_ssize_t k, list totals,
                       list labels, int digits, tuple keys):
        """The terms of ``contributions``; with ``totals`` (``score`` results, whose
        columns are ``results``' first fields) as ``(labels[q], rounded share)``."""
        cdef Py_ssize_t nq, nw, nr = len(results), q, r, s, m
        cdef const int32_t* qi = <const int32_t*>_data(items, cnp.NPY_INT32, &nq, "items")
        cdef const double* qw = <const double*>_data(weights, cnp.NPY_FLOAT64, &nw, "weights")
        if nq != nw:
            raise ValueError("items and weights must have the same length")
        if k < 1:
            raise ValueError("k must be >= 1")
        if labels is not None and len(labels) != nq:
            raise ValueError("labels must have one entry per query item")
        for q in range(nq):
            if qi[q] < 0 or qi[q] >= self.n_rows:
                raise ValueError(f"query item index out of range 0..{self.n_rows - 1}")
        cdef _Workspace ws = _workspace(self.n_cols)
        cdef int32_t* position = &ws.position[0]
        cdef int32_t* cols = <int32_t*>malloc((nr + 1) * sizeof(int32_t))
        cdef int32_t* counts = <int32_t*>malloc((nr + 1) * sizeof(int32_t))
        cdef int32_t* top_q = <int32_t*>malloc((nr * k + 1) * sizeof(int32_t))
        cdef double* top_c = <double*>malloc((nr * k + 1) * sizeof(double))
        cdef Py_ssize_t n_set = 0
        cdef int64_t p
        cdef int32_t j, col
        cdef double c, w, total, scale = 1.0
        cdef list out = []
        cdef list row
        label_key, share_key = keys if keys is not None else (None, None)
        for s in range(digits):
            scale *= 10.0
        try:
            if cols == NULL or counts == NULL or top_q == NULL or top_c == NULL:
                raise MemoryError()
            for r in range(nr):
                col = results[r][0] if totals is not None else results[r]
                if col < 0 or col >= self.n_cols:
                    raise ValueError(f"result index out of range 0..{self.n_cols - 1}")
                if position[col]:
                    raise ValueError("results must be distinct")
                cols[r] = col
                counts[r] = 0
                position[col] = r + 1
                n_set = r + 1
            with nogil:
                for q in range(nq):
                    w = qw[q]
                    for p in range(self.indptr[qi[q]], self.indptr[qi[q] + 1]):
                        j = self.indices[p]
                        if not position[j]:
                            continue
                        c = w * <double>self.scores[p]
                        if not c > 0:
                            continue
                        r = position[j] - 1
                        m = counts[r]
                        # Insert after every term >= c: earlier query positions win ties.
                        s = m if m < k else k - 1
                        if m == k and not c > top_c[r * k + k - 1]:
                            continue
                        while s > 0 and top_c[r * k + s - 1] < c:
                            top_c[r * k + s] = top_c[r * k + s - 1]
                            top_q[r * k + s] = top_q[r * k + s - 1]
                            s -= 1
                        top_c[r * k + s] = c
                        top_q[r * k + s] = <int32_t>q
                        if m < k:
                            counts[r] = m + 1
            for r in range(nr):
                row = []
                if totals is None:
                    for s in range(counts[r]):
                        row.append((top_q[r * k + s], top_c[r * k + s]))
                elif keys is None:
                    total = totals[r][1]
                    for s in range(counts[r]):
                        row.append((labels[top_q[r * k + s]],
                                    _round(top_c[r * k + s] / total, scale, digits)))
                else:
                    total = totals[r][1]
                    for s in range(counts[r]):
                        row.append({label_key: labels[top_q[r * k + s]],
                                    share_key: _round(top_c[r * k + s] / total, scale, digits)})
                out.append(row)
            return out
        finally:
            for r in range(n_set):
                position[cols[r]] = 0
            free(cols)
            free(counts)
            free(top_q)
            free(top_c)


cdef object _round(double x, double scale, int digits):
    """``round(x, digits)`` for ``0 <= x * scale < 2**52`` (``scale == 10**digits``).

    Python rounds the exact binary value half-to-even and parses the decimal back; here
    ``x * scale`` is within 1e-12 of the exact product, so away from a half the nearest
    integer ``r`` is the same, and ``r / scale`` (both exact) is correctly rounded, as
    the parse is. Near a half (or out of range) Python's ``round`` decides.
    """
    cdef double y = x * scale, f, d
    if not (0.0 <= y < 4503599627370496.0):
        return round(x, digits)
    f = floor(y)
    d = y - f
    if fabs(d - 0.5) < 1e-6:
        return round(x, digits)
    return (f + 1.0 if d > 0.5 else f) / scale


def score_csr(indptr, indices, scores, query_items, query_weights, Py_ssize_t n, excluded):
    """Top-``n`` ``(indices int32, scores float64)``: the previous entry point, kept."""
    result = Scorer(indptr, indices, scores).score(query_items, query_weights, n, excluded)
    return (
        np.array([j for j, _ in result], dtype=np.int32),
        np.array([s for _, s in result], dtype=np.float64),
    )


def rounded(double x, int digits):
    """The ``because`` share rounding (``_round``), exposed so tests hold it to ``round``."""
    cdef double scale = 1.0
    for _ in range(digits):
        scale *= 10.0
    return _round(x, scale, digits)
