"""In-memory k-NN index in front of sqlite-vec: a PCA coarse pass, then exact re-scoring.

sqlite-vec stays the store of record; this index is rebuilt from its float32 vectors at start and
kept in step with every upsert and delete. Why not query ``vec0`` directly: its float32 scan takes
~34 ms at 100k rows and ~380 ms at 1M on two cores, and it has no ANN index.

How a query runs (every vector is L2-normalised, so cosine = dot product):

1. **Coarse pass.** Each row is also kept projected onto the top ``coarse_dim`` principal
   components of the stored vectors (float32; 96 of 384 by default). One matrix-vector product
   over that quarter-size matrix ranks every row, and the best few hundred to few thousand rows go
   on. Real MiniLM embeddings needed 96 components where clustered synthetic ones did with 64
   (docstring→code queries over 20k stdlib chunks, pool of 80: recall@10 0.92 with 64 components,
   0.99 with 96).
2. **Re-scoring.** The candidates' full vectors (float16 by default: half of float32's memory; on
   real embeddings the score error was ≤ 5e-5 against a median gap of 3e-3 between the 10th and
   11th result) give the cosine scores.

Why not the alternatives, measured here: numpy has no BLAS for int8 or float16, so a quantised
coarse matrix costs a conversion per row per query; sign bits give Hamming distances with so few
distinct values that ``argpartition`` degrades on the ties, and their recall needs a far larger
pool. tests/bench/bench_search.py prints latency and recall@10 at 100k and 1M rows.

Filters on language and project are small integer codes compared in one vectorised pass, and the
coarse pass then ranks only the rows that pass (gathered first when they are few): a filtered query
does about the work of an unfiltered one, and less when the filter is selective. ``path_filter``
(a glob matcher, say) is a Python callable, so it only sees the candidates' paths, each distinct
path once per query; the share of survivors sets how far the pool widens, and when it is tiny the
filter runs once per distinct path of the masked rows and the search repeats over exactly the rows
that pass. Verdicts are remembered per filter object (the last 16), so a caller that keeps one
filter per glob set (``functools.lru_cache`` on the globs) pays the Python calls once; once
(nearly) every path has a verdict, the filter is a mask like a language's and the coarse pass
ranks only the rows it accepts (1M rows, a package of < 1%: 24 → 4.4 ms; unfiltered 18 ms).

The principal components are fitted on a sample of the rows at the first ``add`` and refitted
whenever the index has doubled since the last fit, so the basis follows the data at an amortised
cost (a refit re-projects every stored row; add in large batches at start-up).

Threads: one writer and any number of readers. Searches share a read lock; ``add``/``remove``
take the write lock (writers are preferred, so a stream of searches cannot starve the indexer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from leo_lsp.errors import InvalidArguments

logger = logging.getLogger(__name__)

Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

_MIN_CAPACITY = 1024
#: Rows converted to float32 at a time when scanning the float16 store (bounds the temporary).
_SCAN_BLOCK = 65_536
#: Rows sampled to fit the principal components: enough for a stable 384×384 covariance.
_FIT_SAMPLE = 16_384
#: Below this fraction of selected rows, gathering the selected rows beats scanning all of them.
_GATHER_FRACTION = 0.25
#: The re-scored pool grows with the index: more rows crowd the coarse ranking's top (at 1M rows
#: a pool of 2,000 lifted recall@10 from 0.97 to 0.997 for +2 ms; measured on clustered data).
_POOL_PER_ROWS = 500
#: Path filters whose verdicts are remembered (least recently used dropped first).
_PATH_CACHES = 16
#: Pool widenings for ``path_filter`` before it runs over every distinct path instead.
_WIDEN_STEPS = 2


def _matvec(matrix: npt.NDArray[Any], vector: Float32Array) -> Float32Array:
    """``matrix @ vector`` on one core, whatever the BLAS thread settings of the process.

    Searches never enter OpenBLAS: on two busy cores its threads spin against each other
    (measured: a 16k×384 covariance took 2.0 s with two threads, 0.28 s with one), and its
    thread count is process-wide state. numpy's einsum kernel is single-threaded SIMD and, for a
    matrix-vector product, as memory-bound as sgemv (it matched or beat OpenBLAS here).
    """
    return np.einsum("ij,j->i", matrix, vector, dtype=np.float32)  # type: ignore[no-any-return]


_blas_controller: ThreadpoolController | None = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the writer's matrix products (fit, projections) on one BLAS thread; see ``_matvec``."""
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    with _blas_controller.limit(limits=1, user_api="blas"):
        yield


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Vocabulary:
    """Interns strings as small integer codes so filters become array look-ups."""

    def __init__(self, limit: int) -> None:
        self._codes: dict[str, int] = {}
        self.names: list[str] = []
        self._limit = limit

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, values: Sequence[str]) -> Int64Array:
        """Codes of ``values``, interning the new ones."""
        # dict.fromkeys and map run at C speed: ~10× a Python loop over a million rows.
        new = [value for value in dict.fromkeys(values) if value not in self._codes]
        if len(self.names) + len(new) > self._limit:
            raise InvalidArguments(f"more than {self._limit} distinct values")
        for value in new:
            self._codes[value] = len(self.names)
            self.names.append(value)
        return np.fromiter(map(self._codes.__getitem__, values), dtype=np.int64, count=len(values))

    def code(self, value: str) -> int:
        """The code of ``value``, or -1 if it was never interned."""
        return self._codes.get(value, -1)

    def mask(self, codes: npt.NDArray[Any], values: set[str]) -> BoolArray:
        """True for each code whose string is in ``values``."""
        wanted = [self._codes[value] for value in values if value in self._codes]
        if len(wanted) <= 4:
            # A comparison per value is ~30× cheaper than a table look-up per row (measured).
            mask = np.zeros(len(codes), dtype=np.bool_)
            for code in wanted:
                mask |= codes == code
            return mask
        table = np.zeros(len(self.names), dtype=np.bool_)
        table[wanted] = True
        selected: BoolArray = table[codes]
        return selected

    def memory_bytes(self) -> int:
        # dict entry + list slot + str object; an estimate, sys.getsizeof per string would be slow.
        return sum(len(name) for name in self.names) + 120 * len(self.names)


class VectorIndex:
    """k-NN over L2-normalised vectors with language/project/path filters; see the module doc."""

    def __init__(
        self,
        dim: int,
        *,
        coarse_dim: int = 96,
        candidates: int = 512,
        store_dtype: type[np.floating[Any]] = np.float16,
        seed: int = 0,
    ) -> None:
        """Create an empty index for vectors of ``dim`` dimensions.

        At least ``candidates`` rows of the coarse ranking are re-scored exactly (more when ``k``
        is large, and 1 in ``_POOL_PER_ROWS`` rows of a large index); ``store_dtype`` is float16
        (half the memory) or float32 (scores exact to the last bit).
        """
        if dim <= 0:
            raise InvalidArguments("dim must be positive", field="dim")
        if store_dtype not in (np.float16, np.float32):
            raise InvalidArguments("store_dtype must be float16 or float32", field="store_dtype")
        self.dim = dim
        self.coarse_dim = max(1, min(coarse_dim, dim))
        self.candidates = max(1, candidates)
        self._store_dtype = np.dtype(store_dtype)
        self._rng = np.random.default_rng(seed)
        self._lock = _ReadWriteLock()
        self._n = 0
        self._capacity = 0
        self._ids: Int64Array = np.empty(0, dtype=np.int64)
        self._vectors: npt.NDArray[Any] = np.empty((0, dim), dtype=self._store_dtype)
        self._coarse: Float32Array = np.empty((0, self.coarse_dim), dtype=np.float32)
        self._language: npt.NDArray[np.uint16] = np.empty(0, dtype=np.uint16)
        self._project: npt.NDArray[np.uint16] = np.empty(0, dtype=np.uint16)
        self._path: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
        # id → row without a Python dict (~100 bytes per entry): ids sorted, rows alongside.
        self._sorted_ids: Int64Array = np.empty(0, dtype=np.int64)
        self._sorted_rows: Int64Array = np.empty(0, dtype=np.int64)
        self._languages = _Vocabulary(np.iinfo(np.uint16).max)
        self._projects = _Vocabulary(np.iinfo(np.uint16).max)
        self._paths = _Vocabulary(np.iinfo(np.int32).max)
        self._mean: Float32Array = np.zeros(dim, dtype=np.float32)
        self._basis: Float32Array = np.eye(dim, self.coarse_dim, dtype=np.float32)
        self._fitted_at = 0
        self._path_caches: dict[Callable[[str], bool], _PathCache] = {}
        self._path_caches_lock = threading.Lock()
        # path → normalised mean of its rows (a re-ranking signal); dropped when its rows change.
        self._centroids: dict[str, Float32Array] = {}
        self._centroids_lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def add(
        self,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        languages: Sequence[str],
        projects: Sequence[str],
        paths: Sequence[str],
    ) -> None:
        """Insert rows; an id already present is replaced (vector and metadata)."""
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        matrix = np.asarray(vectors, dtype=np.float32)
        count = len(id_array)
        if matrix.ndim != 2 or matrix.shape != (count, self.dim):
            raise InvalidArguments(
                f"vectors must have shape ({count}, {self.dim}), got {matrix.shape}",
                field="vectors",
            )
        for name, seq in (("languages", languages), ("projects", projects), ("paths", paths)):
            if len(seq) != count:
                raise InvalidArguments(f"{name} has {len(seq)} items, ids {count}", field=name)
        if count == 0:
            return
        # A batch naming one id twice keeps its last row, as sequential adds would.
        _, last_from_end = np.unique(id_array[::-1], return_index=True)
        keep = np.sort(count - 1 - last_from_end)
        if len(keep) != count:
            id_array, matrix = id_array[keep], matrix[keep]
            languages = [languages[i] for i in keep]
            projects = [projects[i] for i in keep]
            paths = [paths[i] for i in keep]
        with self._lock.write(), _one_blas_thread():
            self._add_locked(id_array, matrix, languages, projects, paths)

    def _add_locked(
        self,
        ids: Int64Array,
        matrix: Float32Array,
        languages: Sequence[str],
        projects: Sequence[str],
        paths: Sequence[str],
    ) -> None:
        language_codes = self._languages.encode(languages)
        project_codes = self._projects.encode(projects)
        path_codes = self._paths.encode(paths)
        existing = self._rows_of(ids)
        if self._centroids:  # nothing to forget on a bulk load, before any search
            self._forget_centroids(set(paths) | self._path_names(existing[existing >= 0]))
        fresh = existing < 0
        n_fresh = int(fresh.sum())
        self._reserve(self._n + n_fresh)
        old_n = self._n
        target: Int64Array | slice
        if n_fresh == len(ids):
            # All new (the bulk rebuild): a slice assignment is several times a fancy-index one.
            target = slice(old_n, old_n + n_fresh)
            self._index_ids(ids, np.arange(old_n, old_n + n_fresh))
        else:
            target = existing.copy()
            target[fresh] = np.arange(old_n, old_n + n_fresh)
            if n_fresh:
                self._index_ids(ids[fresh], target[fresh])
        self._ids[target] = ids
        self._vectors[target] = matrix
        self._language[target] = language_codes
        self._project[target] = project_codes
        self._path[target] = path_codes
        self._n += n_fresh
        if self._n > 2 * self._fitted_at:
            self._fit_basis()
            self._project_stored(0, old_n)
        self._coarse[target] = (matrix - self._mean) @ self._basis

    def remove(self, ids: npt.ArrayLike) -> None:
        """Delete rows by id; ids not in the index are ignored."""
        id_array = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self._lock.write():
            found = self._rows_of(id_array)
            present = found >= 0
            if not present.any():
                return
            rows = np.sort(found[present])
            if self._centroids:
                self._forget_centroids(self._path_names(rows))
            new_n = self._n - len(rows)
            # Swap-with-last keeps the live rows dense, so no scan ever skips tombstones.
            holes = rows[rows < new_n]
            tail = np.arange(new_n, self._n)
            movers = tail[~np.isin(tail, rows, assume_unique=True)]
            for array in self._row_arrays():
                array[holes] = array[movers]
            positions = np.searchsorted(self._sorted_ids, self._ids[holes])
            self._sorted_rows[positions] = holes
            gone = np.searchsorted(self._sorted_ids, id_array[present])
            self._sorted_ids = np.delete(self._sorted_ids, gone)
            self._sorted_rows = np.delete(self._sorted_rows, gone)
            self._n = new_n
            # A refit is due once the index doubles again from its new size.
            self._fitted_at = min(self._fitted_at, new_n)
            if len(self._paths) > 2 * self._n + 1024:
                self._compact_paths()

    def _path_names(self, rows: Int64Array) -> set[str]:
        names = self._paths.names
        return {names[code] for code in np.unique(self._path[rows]).tolist()}

    def _forget_centroids(self, paths: set[str]) -> None:
        with self._centroids_lock:
            for path in paths:
                self._centroids.pop(path, None)

    def _row_arrays(self) -> list[npt.NDArray[Any]]:
        return [
            self._ids,
            self._vectors,
            self._coarse,
            self._language,
            self._project,
            self._path,
        ]

    def _rows_of(self, ids: Int64Array) -> Int64Array:
        """Row of each id, -1 where absent."""
        positions = np.searchsorted(self._sorted_ids, ids)
        found = positions < len(self._sorted_ids)
        found[found] = self._sorted_ids[positions[found]] == ids[found]
        rows = np.full(len(ids), -1, dtype=np.int64)
        rows[found] = self._sorted_rows[positions[found]]
        return rows

    def _index_ids(self, ids: Int64Array, rows: Int64Array) -> None:
        order = np.argsort(ids)
        ids, rows = ids[order], rows[order]
        positions = np.searchsorted(self._sorted_ids, ids)
        self._sorted_ids = np.insert(self._sorted_ids, positions, ids)
        self._sorted_rows = np.insert(self._sorted_rows, positions, rows)

    def _reserve(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        # 1.25× rather than 2×: at a million rows every spare row costs ~900 bytes, and a bulk
        # add (the rebuild at start) gets exactly the rows it needs.
        capacity = max(_MIN_CAPACITY, needed, self._capacity + self._capacity // 4)
        n = self._n

        def grow(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
            grown = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
            grown[:n] = array[:n]
            return grown

        self._ids = grow(self._ids)
        self._vectors = grow(self._vectors)
        self._coarse = grow(self._coarse)
        self._language = grow(self._language)
        self._project = grow(self._project)
        self._path = grow(self._path)
        self._capacity = capacity

    def _fit_basis(self) -> None:
        """Refit the principal components on a sample of the stored rows."""
        n = self._n
        sample_rows = (
            np.arange(n) if n <= _FIT_SAMPLE else self._rng.choice(n, _FIT_SAMPLE, replace=False)
        )
        sample = self._vectors[np.sort(sample_rows)].astype(np.float32)
        mean = sample.mean(axis=0)
        centred = sample - mean
        covariance = centred.T @ centred
        _, eigenvectors = np.linalg.eigh(covariance)
        # eigh sorts eigenvalues ascending: the last columns span the most variance.
        basis = np.ascontiguousarray(eigenvectors[:, ::-1][:, : self.coarse_dim], dtype=np.float32)
        self._mean, self._basis = mean.astype(np.float32), basis
        self._fitted_at = n
        logger.debug("vector index basis refitted", extra={"rows": n})

    def _project_stored(self, start: int, stop: int) -> None:
        """Recompute the coarse rows ``start:stop`` from the stored vectors."""
        for begin in range(start, stop, _SCAN_BLOCK):
            end = min(begin + _SCAN_BLOCK, stop)
            block = self._vectors[begin:end].astype(np.float32)
            self._coarse[begin:end] = (block - self._mean) @ self._basis

    def _compact_paths(self) -> None:
        live = self._path[: self._n]
        used, remapped = np.unique(live, return_inverse=True)
        names = [self._paths.names[code] for code in used]
        self._paths = _Vocabulary(np.iinfo(np.int32).max)
        self._paths.encode(names)
        self._path[: self._n] = remapped.astype(np.int32)
        with self._path_caches_lock:
            self._path_caches.clear()  # their verdicts are indexed by the old codes

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        with self._lock.read():
            return bool(self._rows_of(np.array([item], dtype=np.int64))[0] >= 0)

    def vectors_of(self, ids: npt.ArrayLike) -> dict[int, Float32Array]:
        """The held vectors (as float32) of those `ids` that are in the index."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock.read():
            rows = self._rows_of(wanted)
            found = rows >= 0
            block = self._vectors[rows[found]].astype(np.float32)
        return {int(i): block[k] for k, i in enumerate(wanted[found].tolist())}

    def memory_bytes(self) -> int:
        """Bytes held: allocated arrays (spare capacity included) plus the string vocabularies."""
        with self._lock.read():
            arrays = [*self._row_arrays(), self._sorted_ids, self._sorted_rows, self._basis]
            return sum(a.nbytes for a in arrays) + sum(
                v.memory_bytes() for v in (self._languages, self._projects, self._paths)
            )

    def centroids(self, paths: Iterable[str]) -> dict[str, Float32Array]:
        """Each path's normalised mean vector (paths without rows are absent); cached per path.

        A file's centroid says what the file is about: among same-named methods of several
        files, the one whose file matches the query is usually the one meant (fit_ranker.py).
        """
        wanted = set(paths)
        with self._centroids_lock:
            out = {p: c for p in wanted if (c := self._centroids.get(p)) is not None}
        if wanted <= out.keys():
            return out
        with self._lock.read():
            # Codes are read under the lock: a removal may renumber them (_compact_paths).
            missing = {p: k for p in wanted - out.keys() if (k := self._paths.code(p)) >= 0}
            live = self._path[: self._n]
            rows = np.flatnonzero(np.isin(live, np.fromiter(missing.values(), dtype=np.int64)))
            codes = live[rows]
            fresh: dict[str, Float32Array] = {}
            for path, code in missing.items():
                mine = rows[codes == code]
                if len(mine) == 0:
                    continue
                mean = self._vectors[mine].astype(np.float32).mean(axis=0)
                fresh[path] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
            with self._centroids_lock:
                self._centroids.update(fresh)
        out.update(fresh)
        return out

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        languages: set[str] | None = None,
        projects: set[str] | None = None,
        path_filter: Callable[[str], bool] | None = None,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """The ``k`` rows most similar to ``query``: (id, cosine score), best first.

        ``languages``/``projects`` keep rows whose value is in the set (``None``: no filter);
        ``path_filter`` keeps rows whose path it accepts: it must be a pure function of the path,
        since its verdicts are remembered for as long as the same object is passed again (reuse
        one object per glob set); ``exact`` scores every allowed row (slow: for tests, benches).
        """
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape != (self.dim,):
            raise InvalidArguments(
                f"query must have {self.dim} dimensions, got {vector.shape}", field="query"
            )
        if k <= 0:
            return []
        with self._lock.read():
            return self._search_locked(vector, k, languages, projects, path_filter, exact)

    def _search_locked(
        self,
        query: Float32Array,
        k: int,
        languages: set[str] | None,
        projects: set[str] | None,
        path_filter: Callable[[str], bool] | None,
        exact: bool,
    ) -> list[tuple[int, float]]:
        n = self._n
        if n == 0:
            return []
        mask: BoolArray | None = None
        if languages is not None:
            mask = self._languages.mask(self._language[:n], languages)
        if projects is not None:
            allowed = self._projects.mask(self._project[:n], projects)
            mask = allowed if mask is None else mask & allowed
        selected = n if mask is None else int(np.count_nonzero(mask))
        if selected == 0:
            return []
        cache = None if path_filter is None else self._path_cache(path_filter)
        if exact:
            if cache is not None:
                mask = self._path_mask(mask, cache)
            rows, scores = self._exact(query, mask)
        elif cache is None:
            rows, scores = self._ranked(query, self._pool(k), mask, selected)
        elif (verdicts := cache.table(len(self._paths))) is not None:
            # Every path judged already (the same globs re-queried): the filter is a mask like a
            # language's, and the coarse pass ranks only the rows that pass.
            allowed = verdicts[self._path[:n]]
            mask = allowed if mask is None else mask & allowed
            selected = int(np.count_nonzero(mask))
            if selected == 0:
                return []
            rows, scores = self._ranked(query, self._pool(k), mask, selected)
        else:
            rows, scores = self._ranked_with_paths(query, k, mask, selected, cache)
        rows, scores = self._best(rows, scores, k)
        return list(zip(self._ids[rows].tolist(), scores.tolist(), strict=True))

    def _path_cache(self, path_filter: Callable[[str], bool]) -> _PathCache:
        try:
            hash(path_filter)
        except TypeError:
            return _PathCache(path_filter, self._paths.names)  # unhashable: judged per query
        with self._path_caches_lock:
            cache = self._path_caches.pop(path_filter, None)
            if cache is None:
                cache = _PathCache(path_filter, self._paths.names)
            self._path_caches[path_filter] = cache  # re-inserted: most recently used last
            while len(self._path_caches) > _PATH_CACHES:
                del self._path_caches[next(iter(self._path_caches))]
            return cache

    def _pool(self, k: int) -> int:
        return max(self.candidates, 8 * k, self._n // _POOL_PER_ROWS)

    def _ranked_with_paths(
        self, query: Float32Array, k: int, mask: BoolArray | None, selected: int, cache: _PathCache
    ) -> tuple[Int64Array, Float32Array]:
        """Over-fetch until about ``candidates`` rows survive the path filter, then re-score them.

        The surviving share of the first pool estimates how selective the filter is; the pool is
        widened to match (re-using the coarse scores), so a filtered query re-scores about as many
        *matching* rows as an unfiltered one and keeps its recall. When the share is tiny, the
        filter runs once per distinct path of the masked rows instead and the search repeats over
        exactly the rows that pass.
        """
        # Not scaled with the index size like ``_pool``: every widening calls ``path_filter`` on
        # the new candidates' paths, and that Python call dominates a filtered query's cost.
        target = max(self.candidates, 8 * k)
        pool = target
        coarse = _CoarseRanking(self, query, mask, selected)
        for _ in range(_WIDEN_STEPS + 1):
            rows = coarse.rows(pool)
            # Filter before re-scoring: only the survivors' vectors are converted and scored.
            keep = cache.accepts(self._path[rows])
            survivors = int(np.count_nonzero(keep))
            if survivors >= target or pool >= selected:
                return rows[keep], coarse.rescore(rows[keep])
            share = max(survivors, 1) / pool
            wanted = int(target / share * 1.25)
            if wanted > selected * _GATHER_FRACTION:
                break
            pool = wanted
        mask = self._path_mask(mask, cache)
        count = int(np.count_nonzero(mask))
        if count == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        return self._ranked(query, self._pool(k), mask, count)

    def _path_mask(self, mask: BoolArray | None, cache: _PathCache) -> BoolArray:
        codes = self._path[: self._n]
        # A scatter finds the distinct codes in one pass; np.unique would sort a million of them.
        present = np.zeros(len(self._paths), dtype=np.bool_)
        present[codes if mask is None else codes[mask]] = True
        used = np.flatnonzero(present)
        table = np.zeros(len(self._paths), dtype=np.bool_)
        table[used] = cache.accepts(used)
        path_mask = table[codes]
        return path_mask if mask is None else path_mask & mask

    def _ranked(
        self, query: Float32Array, pool: int, mask: BoolArray | None, selected: int
    ) -> tuple[Int64Array, Float32Array]:
        """Coarse pass to ``pool`` rows, then their exact scores (rows, not ids; unordered)."""
        return _CoarseRanking(self, query, mask, selected).take(pool)

    def _exact(
        self, query: Float32Array, mask: BoolArray | None
    ) -> tuple[Int64Array, Float32Array]:
        """Every allowed row's exact score, converting the store a block at a time."""
        n = self._n
        if mask is None:
            scores = np.empty(n, dtype=np.float32)
            for start in range(0, n, _SCAN_BLOCK):
                stop = min(start + _SCAN_BLOCK, n)
                scores[start:stop] = _matvec(self._vectors[start:stop], query)
            return np.arange(n), scores
        rows = np.flatnonzero(mask)
        scores = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), _SCAN_BLOCK):
            chunk = rows[start : start + _SCAN_BLOCK]
            scores[start : start + len(chunk)] = _matvec(self._vectors[chunk], query)
        return rows, scores

    def _best(
        self, rows: Int64Array, scores: Float32Array, k: int
    ) -> tuple[Int64Array, Float32Array]:
        """The best ``k`` rows, best first; equal scores in id order so results are stable."""
        if len(rows) > k:
            best = np.argpartition(scores, -k)[-k:]
            rows, scores = rows[best], scores[best]
        order = np.lexsort((self._ids[rows], -scores))
        return rows[order], scores[order]


class _CoarseRanking:
    """One query's coarse scores over the allowed rows, from which pools of any size are taken."""

    def __init__(
        self, index: VectorIndex, query: Float32Array, mask: BoolArray | None, selected: int
    ) -> None:
        self._index = index
        self._query = query
        self._mask = mask
        self._selected = selected
        self._subset: Int64Array | None = None
        self._scores: Float32Array | None = None

    def _score(self) -> Float32Array:
        if self._scores is None:
            index, mask = self._index, self._mask
            n = index._n
            # (x - mean)·P·Pᵀq ranks rows like x·q up to the projection; q needs no centring.
            projected = _matvec(index._basis.T, self._query)
            if mask is None:
                self._scores = _matvec(index._coarse[:n], projected)
            else:
                # Compress rather than set excluded scores to -inf: argpartition over many equal
                # values degrades badly (190 ms instead of 7 ms over 1M rows, measured).
                self._subset = np.flatnonzero(mask)
                if self._selected < _GATHER_FRACTION * n:
                    self._scores = _matvec(index._coarse[self._subset], projected)
                else:
                    self._scores = _matvec(index._coarse[:n], projected)[self._subset]
        return self._scores

    def take(self, pool: int) -> tuple[Int64Array, Float32Array]:
        """The best ``pool`` rows by coarse score, with their exact scores."""
        rows = self.rows(pool)
        return rows, self.rescore(rows)

    def rows(self, pool: int) -> Int64Array:
        """The best ``pool`` rows by coarse score (every allowed row when there are fewer)."""
        index, mask = self._index, self._mask
        if self._selected <= pool:
            return np.arange(index._n) if mask is None else np.flatnonzero(mask)
        rows = _top_indices(self._score(), pool)
        return rows if self._subset is None else self._subset[rows]

    def rescore(self, rows: Int64Array) -> Float32Array:
        """Exact cosine scores of ``rows`` from the stored vectors."""
        return _matvec(self._index._vectors[rows], self._query)


def _top_indices(scores: Float32Array, count: int) -> Int64Array:
    """Indices of the ``count`` largest scores, unordered (``count`` < ``len(scores)``).

    argpartition over a million scores takes ~7 ms; a threshold from a strided sample that about
    2·count scores exceed cuts the field to a few thousand first (~0.4 ms, measured). Exact: when
    fewer than ``count`` scores pass the threshold it falls back to the full argpartition.
    """
    n = len(scores)
    if n >= 100_000:
        sample = scores[:: n // 16_384]
        above = max(1, int(len(sample) * 2 * count / n))
        if above < len(sample):
            threshold = np.partition(sample, len(sample) - above)[len(sample) - above]
            passed = np.flatnonzero(scores >= threshold)
            if len(passed) >= count:
                return passed[np.argpartition(scores[passed], -count)[-count:]]
    return np.argpartition(scores, -count)[-count:]


class _PathCache:
    """Verdicts of one ``path_filter``, each distinct path judged once.

    Kept across queries for the same filter object (a glob picker re-queries with the same
    filter on every keystroke), so the filter must be a pure function of the path.
    """

    def __init__(self, path_filter: Callable[[str], bool], names: list[str]) -> None:
        self._filter = path_filter
        self._names = names
        # -1: not judged yet; 0/1: the verdict. Indexed by path code.
        self._verdicts: npt.NDArray[np.int8] = np.full(len(names), -1, dtype=np.int8)
        self._lock = threading.Lock()

    def table(self, size: int) -> BoolArray | None:
        """Acceptance by path code (`size` codes), or None while most paths are unjudged.

        A few unjudged codes (paths added since) are judged now; many mean the filter is new.
        """
        with self._lock:
            known = min(len(self._verdicts), size)
            unjudged = np.flatnonzero(self._verdicts[:known] < 0)
            if len(unjudged) + size - known > max(64, size // 100):
                return None
        self.accepts(np.concatenate([unjudged, np.arange(known, size)]))  # grows if needed
        with self._lock:
            accepted: BoolArray = self._verdicts[:size] == 1
            return accepted

    def accepts(self, codes: npt.NDArray[Any]) -> BoolArray:
        """Verdict per code (codes may repeat)."""
        with self._lock:
            if len(self._verdicts) < len(self._names):
                grown = np.full(len(self._names), -1, dtype=np.int8)
                grown[: len(self._verdicts)] = self._verdicts
                self._verdicts = grown
            verdicts = self._verdicts
            unjudged = np.unique(codes[verdicts[codes] < 0])
            names, accept = self._names, self._filter
            verdicts[unjudged] = [bool(accept(names[code])) for code in unjudged.tolist()]
            accepted: BoolArray = verdicts[codes] == 1
            return accepted
