"""VectorIndex: exactness on small sets, filters, replace/remove, recall, thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from leo_lsp.errors import InvalidArguments
from leo_lsp.store.vector_index import VectorIndex, _top_indices

F32 = npt.NDArray[np.float32]
LANGS = ("python", "rust", "go")
PROJECTS = ("alpha", "beta")


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """The test data's own matrix products: two OpenBLAS threads on busy cores thrash."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def clustered(n: int, dim: int, seed: int, n_queries: int = 0) -> tuple[F32, F32]:
    """Unit vectors in clusters with a decaying spectrum and a shared mean, like embeddings."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dim + 1, dtype=np.float32) ** -0.5
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    n_clusters = max(1, n // 40)
    mean = rng.standard_normal(dim).astype(np.float32) * scales
    centres = mean + rng.standard_normal((n_clusters, dim)).astype(np.float32) * scales
    spread = rng.uniform(0.4, 1.0, n_clusters).astype(np.float32)

    def sample(m: int) -> F32:
        c = rng.integers(0, n_clusters, m)
        noise = rng.standard_normal((m, dim)).astype(np.float32) * scales * spread[c, None]
        x = (centres[c] + noise) @ rotation
        unit: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return unit

    return sample(n), sample(n_queries)


def metadata(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    languages = [LANGS[i] for i in rng.integers(0, len(LANGS), n)]
    projects = [PROJECTS[i] for i in rng.integers(0, len(PROJECTS), n)]
    paths = [f"src/mod{i}/file{i % 7}.x" for i in rng.integers(0, 60, n)]
    return languages, projects, paths


def brute_force(
    vectors: F32, ids: npt.NDArray[np.int64], query: F32, k: int, keep: npt.NDArray[np.bool_]
) -> list[tuple[int, float]]:
    scores = vectors[keep] @ query
    kept_ids = ids[keep]
    order = np.lexsort((kept_ids, -scores))[:k]
    return [(int(kept_ids[i]), float(scores[i])) for i in order]


def build(
    n: int, dim: int, seed: int, **options: int
) -> tuple[VectorIndex, F32, npt.NDArray[np.int64], tuple[list[str], list[str], list[str]]]:
    vectors, _ = clustered(n, dim, seed)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    meta = metadata(n, seed)
    index = VectorIndex(dim, store_dtype=np.float32, **options)
    index.add(ids, vectors, *meta)
    return index, vectors, ids, meta


def ids_of(results: list[tuple[int, float]]) -> list[int]:
    return [i for i, _ in results]


def test_small_index_matches_brute_force_exactly() -> None:
    index, vectors, ids, _ = build(300, 32, seed=1)
    _, queries = clustered(300, 32, seed=1, n_queries=5)
    everything = np.ones(len(ids), dtype=np.bool_)
    for query in queries:
        expected = brute_force(vectors, ids, query, 10, everything)
        got = index.search(query, 10)
        assert ids_of(got) == ids_of(expected)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)
        assert ids_of(index.search(query, 10, exact=True)) == ids_of(expected)


def test_coarse_pass_scores_are_exact_and_sorted() -> None:
    # A pool of 20 out of 3000 rows forces the coarse pass; whatever it returns must carry the
    # row's true cosine, best first.
    index, vectors, ids, _ = build(3000, 48, seed=2, coarse_dim=8, candidates=20)
    _, queries = clustered(3000, 48, seed=2, n_queries=5)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    for query in queries:
        got = index.search(query, 10)
        assert len(got) == 10
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        for i, score in got:
            assert score == pytest.approx(float(by_id[i] @ query), abs=1e-6)


def test_float16_store_scores_within_tolerance() -> None:
    vectors, queries = clustered(2000, 64, seed=3, n_queries=5)
    ids = np.arange(2000, dtype=np.int64)
    index = VectorIndex(64)
    index.add(ids, vectors, *metadata(2000, 3))
    for query in queries:
        for i, score in index.search(query, 10):
            assert score == pytest.approx(float(vectors[i] @ query), abs=2e-3)


def test_recall_at_10_on_20k_clustered_set() -> None:
    vectors, queries = clustered(20_000, 384, seed=4, n_queries=50)
    ids = np.arange(20_000, dtype=np.int64)
    index = VectorIndex(384)
    index.add(ids, vectors, *metadata(20_000, 4))
    everything = np.ones(20_000, dtype=np.bool_)
    recalls = []
    for query in queries:
        truth = set(ids_of(brute_force(vectors, ids, query, 10, everything)))
        recalls.append(len(truth & set(ids_of(index.search(query, 10)))) / 10)
    assert float(np.mean(recalls)) >= 0.95


@pytest.mark.parametrize("exact", [False, True])
def test_language_and_project_filters(exact: bool) -> None:
    index, vectors, ids, (languages, projects, _) = build(5000, 32, seed=5, candidates=64)
    _, queries = clustered(5000, 32, seed=5, n_queries=5)
    lang = np.array(languages)
    proj = np.array(projects)
    for query in queries:
        got = index.search(query, 10, languages={"rust"}, projects={"beta"}, exact=exact)
        assert len(got) == 10
        for i, _ in got:
            assert languages[i - 1000] == "rust" and projects[i - 1000] == "beta"
        truth = brute_force(vectors, ids, query, 10, (lang == "rust") & (proj == "beta"))
        overlap = len(set(ids_of(truth)) & set(ids_of(got)))
        assert overlap == 10 if exact else overlap >= 8
        only_python = index.search(query, 5, languages={"python", "cobol"}, exact=exact)
        assert {languages[i - 1000] for i, _ in only_python} == {"python"}
    assert index.search(queries[0], 10, languages={"cobol"}) == []
    assert index.search(queries[0], 10, projects=set()) == []


def test_selective_filter_is_exact_over_the_few_rows_it_keeps() -> None:
    index, vectors, ids, _ = build(4000, 32, seed=6, candidates=64)
    rare = np.arange(1000, 1030, dtype=np.int64)
    index.add(rare, vectors[:30], ["zig"] * 30, ["alpha"] * 30, ["rare.zig"] * 30)
    _, queries = clustered(4000, 32, seed=6, n_queries=1)
    got = index.search(queries[0], 10, languages={"zig"})
    keep = np.zeros(len(ids), dtype=np.bool_)
    keep[:30] = True
    assert ids_of(got) == ids_of(brute_force(vectors, ids, queries[0], 10, keep))


def test_path_filter_widens_until_it_finds_far_away_rows() -> None:
    index, vectors, ids, (_, _, paths) = build(6000, 32, seed=7, candidates=16)
    _, queries = clustered(6000, 32, seed=7, n_queries=3)
    path_array = np.array(paths)
    for query in queries:
        # Pick the path whose best row is the worst match: the coarse pool never reaches it.
        scores = vectors @ query
        best_per_path = {p: float(scores[path_array == p].max()) for p in set(paths)}
        target = min(best_per_path, key=lambda p: best_per_path[p])
        calls: list[str] = []

        def only_target(path: str, target: str = target, calls: list[str] = calls) -> bool:
            calls.append(path)
            return path == target

        got = index.search(query, 5, path_filter=only_target)
        truth = brute_force(vectors, ids, query, 5, path_array == target)
        assert ids_of(got) == ids_of(truth)
        # Each distinct path is judged at most once per query, not once per row.
        assert len(calls) == len(set(calls))


def test_path_filter_with_common_path_needs_no_fallback() -> None:
    index, vectors, ids, (_, _, paths) = build(3000, 32, seed=8, candidates=64)
    _, queries = clustered(3000, 32, seed=8, n_queries=1)
    path_array = np.array(paths)
    accept: Callable[[str], bool] = lambda p: p.endswith("file3.x")  # noqa: E731
    got = index.search(queries[0], 10, path_filter=accept, languages={"go"})
    assert got and all(paths[i - 1000].endswith("file3.x") for i, _ in got)
    exact = index.search(queries[0], 10, path_filter=accept, languages={"go"}, exact=True)
    lang = np.array(metadata(3000, 8)[0])
    keep = np.char.endswith(path_array, "file3.x") & (lang == "go")
    assert ids_of(exact) == ids_of(brute_force(vectors, ids, queries[0], 10, keep))
    assert index.search(queries[0], 10, path_filter=lambda p: False) == []


def test_replace_and_remove() -> None:
    index, vectors, ids, _ = build(2000, 32, seed=9)
    query = vectors[500]
    assert index.search(query, 1)[0][0] == 1500
    # Re-adding an id replaces its vector and its metadata.
    index.add([1500], vectors[[7]], ["rust"], ["beta"], ["moved.rs"])
    assert len(index) == 2000
    top = index.search(vectors[7], 2)
    assert sorted(ids_of(top)) == [1007, 1500]
    assert ids_of(index.search(vectors[7], 5, path_filter=lambda p: p == "moved.rs")) == [1500]
    assert 1500 not in ids_of(index.search(query, 3))
    # Removing: never returned again; unknown ids are ignored; rows moved by swap stay right.
    removed = np.arange(1000, 1100, dtype=np.int64)
    index.remove(np.concatenate([removed, [999_999]]))
    assert len(index) == 1900
    for row in (0, 50, 99):
        assert all(i not in set(removed.tolist()) for i in ids_of(index.search(vectors[row], 10)))
    for row in (100, 1999, 1234):
        [(found, score)] = index.search(vectors[row], 1)
        assert found == 1000 + row and score == pytest.approx(1.0, abs=1e-6)
    assert 1050 not in index and 1150 in index
    index.remove(ids)
    assert len(index) == 0 and index.search(query, 3) == []
    index.add([5], vectors[[3]], ["go"], ["alpha"], ["a.go"])
    assert ids_of(index.search(vectors[3], 3)) == [5]


def test_batch_with_duplicate_ids_keeps_the_last_row() -> None:
    vectors, _ = clustered(4, 16, seed=10)
    index = VectorIndex(16)
    index.add([1, 2, 1], vectors[:3], ["a", "b", "c"], ["p", "p", "p"], ["x", "y", "z"])
    assert len(index) == 2
    assert index.search(vectors[2], 1)[0][0] == 1
    assert ids_of(index.search(vectors[2], 5, languages={"a"})) == []
    assert ids_of(index.search(vectors[2], 5, languages={"c"})) == [1]


def test_growth_in_small_batches_matches_one_bulk_add() -> None:
    vectors, queries = clustered(5000, 32, seed=11, n_queries=5)
    ids = np.arange(5000, dtype=np.int64)
    meta = metadata(5000, 11)
    bulk = VectorIndex(32, store_dtype=np.float32)
    bulk.add(ids, vectors, *meta)
    trickle = VectorIndex(32, store_dtype=np.float32)
    for start in range(0, 5000, 37):  # crosses many capacity steps and basis refits
        stop = min(start + 37, 5000)
        trickle.add(ids[start:stop], vectors[start:stop], *(m[start:stop] for m in meta))
    assert len(trickle) == 5000
    for query in queries:
        assert trickle.search(query, 10, exact=True) == bulk.search(query, 10, exact=True)
        got = set(ids_of(trickle.search(query, 10)))
        assert len(got & set(ids_of(bulk.search(query, 10, exact=True)))) >= 9


def test_memory_bytes_reports_arrays() -> None:
    vectors, _ = clustered(3000, 64, seed=12)
    half = VectorIndex(64)
    full = VectorIndex(64, store_dtype=np.float32)
    assert half.memory_bytes() < 50_000
    for index in (half, full):
        index.add(np.arange(3000), vectors, *metadata(3000, 12))
    assert 3000 * 64 * 2 < half.memory_bytes() < full.memory_bytes()
    assert full.memory_bytes() - half.memory_bytes() >= 3000 * 64 * 2


def test_invalid_arguments() -> None:
    index = VectorIndex(8)
    with pytest.raises(InvalidArguments):
        index.add([1], np.zeros((1, 7), dtype=np.float32), ["a"], ["p"], ["x"])
    with pytest.raises(InvalidArguments):
        index.add([1, 2], np.zeros((2, 8), dtype=np.float32), ["a"], ["p", "p"], ["x", "y"])
    with pytest.raises(InvalidArguments):
        index.search(np.zeros(9, dtype=np.float32), 3)
    assert index.search(np.zeros(8, dtype=np.float32), 3) == []
    assert index.search(np.ones(8, dtype=np.float32), 0) == []


def test_concurrent_writer_and_readers() -> None:
    dim = 32
    vectors, queries = clustered(6000, dim, seed=13, n_queries=20)
    index = VectorIndex(dim, candidates=64)
    index.add(np.arange(1000), vectors[:1000], *metadata(1000, 13))
    errors: list[BaseException] = []
    done = threading.Event()
    checked = [0]

    def writer() -> None:
        try:
            for start in range(1000, 6000, 250):
                stop = start + 250
                index.add(np.arange(start, stop), vectors[start:stop], *metadata(250, start))
                index.remove(np.arange(start - 1000, start - 900))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            done.set()

    def reader() -> None:
        try:
            # Each id's vector never changes, so every returned score must equal its cosine.
            while not done.is_set() or checked[0] < 40:
                for query in queries:
                    got = index.search(query, 10, languages={"python", "go"})
                    scores = [s for _, s in got]
                    assert scores == sorted(scores, reverse=True)
                    for i, score in got:
                        assert abs(score - float(vectors[i] @ query)) < 2e-3
                    checked[0] += 1
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    removed = {i for start in range(1000, 6000, 250) for i in range(start - 1000, start - 900)}
    assert len(index) == 6000 - len(removed)
    assert [i for i in range(6000) if (i in index) == (i in removed)] == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(st.integers(0, 40), min_size=1, max_size=12)),
        min_size=1,
        max_size=25,
    )
)
def test_random_adds_and_removes_match_a_dict_model(
    operations: list[tuple[bool, list[int]]],
) -> None:
    dim = 8
    rng = np.random.default_rng(14)
    index = VectorIndex(dim, store_dtype=np.float32, candidates=4, coarse_dim=3)
    model: dict[int, F32] = {}
    for step, (is_add, id_list) in enumerate(operations):
        if is_add:
            batch = rng.standard_normal((len(id_list), dim)).astype(np.float32)
            batch /= np.linalg.norm(batch, axis=1, keepdims=True)
            names = [f"f{step}"] * len(id_list)
            index.add(np.array(id_list), batch, names, names, names)
            for i, vector in zip(id_list, batch, strict=True):
                model[i] = vector
        else:
            index.remove(np.array(id_list))
            for i in id_list:
                model.pop(i, None)
        assert len(index) == len(model)
    query = rng.standard_normal(dim).astype(np.float32)
    expected = sorted(((float(v @ query), -i) for i, v in model.items()), reverse=True)[:5]
    got = index.search(query, 5, exact=True)
    assert ids_of(got) == [-i for _, i in expected]
    approx = index.search(query, 5)
    assert {i for i, _ in approx} <= set(model)
    for i, score in approx:
        assert score == pytest.approx(float(model[i] @ query), abs=1e-5)


def test_top_indices_matches_argpartition_on_large_inputs() -> None:
    rng = np.random.default_rng(15)
    n = 150_000
    cases = {
        "random": rng.standard_normal(n).astype(np.float32),
        "ascending": np.arange(n, dtype=np.float32),
        # The strided sample sees only zeros, so the threshold admits every row.
        "hidden peaks": np.where(np.arange(n) % 9 == 4, rng.random(n), 0).astype(np.float32),
        # The sample sees only the high rows, and fewer pass than asked: full fallback.
        "sampled peaks": np.where(
            np.arange(n) % (n // 16_384) == 0, 5 + rng.random(n), rng.random(n)
        ).astype(np.float32),
    }
    for name, scores in cases.items():
        for count in (10, 700, 20_000):
            got = _top_indices(scores, count)
            assert len(got) == count, name
            assert np.sort(scores[got]).tolist() == np.sort(scores)[-count:].tolist(), name


def test_path_verdicts_are_remembered_per_filter_and_survive_path_compaction() -> None:
    vectors, queries = clustered(2000, 16, seed=16, n_queries=3)
    index = VectorIndex(16, candidates=32)
    unique_paths = [f"dir{i % 3}/f{i}.py" for i in range(2000)]
    index.add(np.arange(2000), vectors, ["python"] * 2000, ["p"] * 2000, unique_paths)
    calls: list[str] = []

    def in_dir1(path: str) -> bool:
        calls.append(path)
        return path.startswith("dir1/")

    first = index.search(queries[0], 5, path_filter=in_dir1)
    judged = len(calls)
    assert judged > 0 and all(unique_paths[i].startswith("dir1/") for i, _ in first)
    assert index.search(queries[0], 5, path_filter=in_dir1) == first
    assert len(calls) == judged  # the same filter object: no path judged twice
    # Removing most rows compacts the path codes; remembered verdicts must not leak across.
    index.remove(np.arange(0, 1990))
    index.add([5000, 5001], vectors[:2], ["python"] * 2, ["p"] * 2, ["dir1/new.py", "dir2/x.py"])
    survivors = {i for i, _ in index.search(queries[1], 20, path_filter=in_dir1)}
    expected = {i for i in range(1990, 2000) if i % 3 == 1} | {5000}
    assert survivors == expected


def test_a_filter_whose_paths_are_all_judged_ranks_only_the_rows_it_accepts() -> None:
    vectors, queries = clustered(3000, 16, seed=21, n_queries=4)
    index = VectorIndex(16, candidates=32)
    paths = [f"pkg{i % 50}/m{i % 300}.py" for i in range(3000)]  # pkg7: 2% of the rows
    index.add(np.arange(3000), vectors, ["python"] * 3000, ["p"] * 3000, paths)
    calls: list[str] = []

    def in_pkg7(path: str) -> bool:
        calls.append(path)
        return path.startswith("pkg7/")

    index.search(queries[0], 10, path_filter=in_pkg7)
    assert len(calls) <= 300  # each distinct path judged at most once
    # Every path is judged now, so no query needs the over-fetching pass any more.
    index._ranked_with_paths = None  # type: ignore[assignment,method-assign]
    ranked = []
    for q in queries:
        ranked.append(index.search(q, 10, path_filter=in_pkg7))
        exact = index.search(q, 10, path_filter=in_pkg7, exact=True)
        assert [i for i, _ in ranked[-1]] == [i for i, _ in exact]
    assert len(calls) <= 300  # later queries use the judged table, no Python calls
    # A path added later is judged once, on the next query, and its row is found.
    index.add([9000], queries[1][None, :], ["python"], ["p"], ["pkg7/new.py"])
    got = index.search(queries[1], 10, path_filter=in_pkg7)
    assert got[0][0] == 9000 and calls[-1] == "pkg7/new.py"


def _mean_unit(rows: F32) -> F32:
    mean = rows.mean(axis=0)
    unit: F32 = (mean / np.linalg.norm(mean)).astype(np.float32)
    return unit


def test_centroids_follow_adds_replacements_and_removals() -> None:
    index, vectors, ids, (_, _, paths) = build(600, 32, seed=5)
    path_array = np.array(paths)
    target = paths[0]
    mine = path_array == target
    got = index.centroids([target, "no/such/file"])
    assert set(got) == {target}  # a path without rows has no centroid
    np.testing.assert_allclose(got[target], _mean_unit(vectors[mine]), atol=1e-5)
    # Replacing one of the file's rows and removing another both change its centroid (the cache
    # must not serve the old one).
    first, second = ids[mine][:2]
    fresh = np.ones((1, 32), dtype=np.float32) / np.sqrt(32)
    index.add([first], fresh, ["python"], ["alpha"], [target])
    index.remove([second])
    expected = vectors[mine].copy()
    expected[0] = fresh[0]
    keep = ids[mine] != second
    np.testing.assert_allclose(
        index.centroids([target])[target], _mean_unit(expected[keep]), atol=1e-5
    )
    # Moving a row to another path changes both files' centroids.
    other = paths[int(np.flatnonzero(path_array != target)[0])]
    before_other = index.centroids([other])[other]
    index.add([ids[mine][2]], fresh, ["python"], ["alpha"], [other])
    assert not np.allclose(index.centroids([other])[other], before_other)
    assert not np.allclose(index.centroids([target])[target], _mean_unit(expected[keep]))
