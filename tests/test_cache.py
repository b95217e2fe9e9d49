"""`archlab list`'s cache: computed once per version of the code, read without torch after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import archlab.cache
from archlab.analysis import zoo


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(folder))
    return folder


def test_rows_are_computed_once_then_read(cache_dir, monkeypatch, cli):
    first = zoo.zoo_rows("lenet*")
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and files[0].name == f"archlab-zoo-{archlab.cache.code_key()}.json"
    monkeypatch.setattr(zoo, "_compute_rows", lambda: pytest.fail("computed again"))
    assert zoo.zoo_rows("lenet*") == first
    assert [r["name"] for r in zoo.zoo_rows("resnet5*")] == ["resnet50", "resnet50_v1_5"]
    assert cli("list", "lenet*", "--format", "json").json() == first


def test_a_cached_listing_does_not_import_torch(cache_dir):
    zoo.zoo_rows()
    code = ("import sys; from archlab.cli import main; rc = main(['list', 'mobilenet*']); "
            "assert 'torch' not in sys.modules, 'imported torch'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "ARCHLAB_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr
    assert "mobilenet_v2" in r.stdout


def test_the_key_follows_the_sources(tmp_path, monkeypatch):
    copy = tmp_path / "archlab"
    shutil.copytree(archlab.cache._PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(archlab.cache, "_PACKAGE", copy)
    before = archlab.cache.code_key()
    assert archlab.cache.code_key() == before
    rules = copy / "analysis" / "costs.py"
    rules.write_text(rules.read_text() + "\n# a changed rule\n")
    assert archlab.cache.code_key() != before


def test_off_corrupt_and_unwritable_caches_are_not_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", "off")
    assert archlab.cache.directory() is None and archlab.cache.load("zoo") is None
    archlab.cache.store("zoo", [1])  # nothing written, nothing raised

    folder = tmp_path / "c"
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(folder))
    folder.mkdir()
    (folder / f"archlab-zoo-{archlab.cache.code_key()}.json").write_text("{not json")
    assert archlab.cache.load("zoo") is None, "a corrupt file is a miss"
    archlab.cache.store("zoo", [1, 2])
    assert archlab.cache.load("zoo") == [1, 2]
    (folder / "archlab-zoo-0000000000000000.json").write_text("[]")
    (folder / "zoo-notes.json").write_text("the user's own file")
    (folder / "archlab-zoo-mine.json").write_text("the user's own file too")
    archlab.cache.store("zoo", [3])
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"archlab-zoo-{archlab.cache.code_key()}.json",
                                                               "zoo-notes.json", "archlab-zoo-mine.json"]), \
        "old versions of the cache go, nothing else"

    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(blocked / "sub"))
    archlab.cache.store("zoo", [1])  # cannot create the folder: ignored
    assert archlab.cache.load("zoo") is None


@pytest.mark.parametrize("content", ["[1, 2]", '"x"', "{}", "[]", '[{"name": "lenet5"}]'])
def test_a_damaged_cache_is_computed_again_and_replaced(cache_dir, content, cli):
    cache_dir.mkdir()
    path = cache_dir / f"archlab-zoo-{archlab.cache.code_key()}.json"
    path.write_text(content)
    rows = cli("list", "lenet*", "--format", "json").json()
    assert [r["name"] for r in rows] == ["lenet", "lenet5"] and rows[1]["params"] == 60_840
    assert zoo._well_formed(archlab.cache.load("zoo")), "the damaged file was replaced"
