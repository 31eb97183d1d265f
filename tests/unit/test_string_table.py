"""The flat string tables serving maps: read back as the list and dict they replace."""

from __future__ import annotations

import pytest

from simrec.serving.string_table import StringIndex, StringList, string_table

WORDS = ["", "a", "b", "sku-1", "ünïcødé", "日本", "a b", "x" * 300, "\x00nul"]


def test_a_table_reads_as_the_list_and_the_dict() -> None:
    arrays = string_table(WORDS, "w")
    names, index = StringList(arrays, "w"), StringIndex(arrays, "w")
    assert len(names) == len(index) == len(WORDS)
    assert [names[i] for i in range(len(WORDS))] == WORDS and names == WORDS
    assert names[-1] == WORDS[-1] and names[1:3] == WORDS[1:3]
    assert index == {w: i for i, w in enumerate(WORDS)} and list(index) == WORDS
    for i, word in enumerate(WORDS):
        assert index.get(word) == i and index[word] == i and word in index
        assert index.get(word) == i  # the cached answer is the same
    with pytest.raises(IndexError):
        names[len(WORDS)]


@pytest.mark.parametrize("missing", ["c", "sku-2", "ünïcødè", "\ud800", "a" * 301, 5, None])
def test_missing_keys_are_not_found(missing: object) -> None:
    index = StringIndex(string_table(WORDS, "w"), "w")
    assert index.get(missing) is None and missing not in index  # type: ignore[arg-type]
    assert index.get(missing, -7) == -7  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        index[missing]  # type: ignore[index]


def test_collisions_are_probed_and_duplicates_rejected() -> None:
    many = [f"sku{i}" for i in range(5000)]  # far more keys than slots of a small table
    index = StringIndex(string_table(many, "s"), "s")
    assert all(index[s] == i for i, s in enumerate(many))
    assert "sku5000" not in index
    with pytest.raises(ValueError, match="listed twice"):
        string_table(["a", "b", "a"], "s")


def test_an_empty_table() -> None:
    arrays = string_table([], "e")
    assert len(StringList(arrays, "e")) == 0 and StringIndex(arrays, "e").get("a") is None


def test_lookup_is_get_over_a_list_of_keys() -> None:
    index = StringIndex(string_table(WORDS, "w"), "w")
    keys = ["sku-1", "nope", "日本", "sku-1", "", "\ud800"]
    assert index.lookup(keys) == [index.get(k) for k in keys] == [3, None, 5, 3, 0, None]
    assert index.lookup(keys) == [3, None, 5, 3, 0, None]  # from the cache this time
    assert index.lookup([]) == []
