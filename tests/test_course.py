"""archlab/models/course.py: the course's data file read as written, for the commands that show a
printed number beside a computed one."""

import pytest

import archlab.models.course as course
from archlab.errors import UserError


def test_a_multiplier_table_row_is_found_and_a_missing_one_is_not():
    row = course.course_value("mobilenet", 0.5, 224)
    assert course.course_value("mobilenet", 1.0, 160) == {"Million Mult-Adds": "290", "Million Parameters": "4.2"}
    assert row and all(isinstance(v, str) for v in row.values())
    assert course.course_value("mobilenet", 0.5, 160) is None  # the tables vary one multiplier at a time
    assert course.course_value("resnet50", 1.0, 224) is None


def test_the_mobilenet_v2_paper_cpu_times():
    times, source = course.paper_cpu()
    assert times and all(v > 0 for v in times.values()) and source
    assert any(spec.startswith("mobilenet_v2") for spec in times)


def test_rows_carry_their_groups_fields():
    rows = course.rows()
    assert len(rows) > 300 and all("claim" in r and "course" in r and "section" in r for r in rows)


def test_a_file_too_large_or_missing_or_not_toml_is_one_line(tmp_path, monkeypatch):
    big = tmp_path / "big.toml"
    big.write_text("x = 1\n" * 10)
    monkeypatch.setattr(course, "MAX_DATA_BYTES", 16)
    with pytest.raises(UserError, match="larger than"):
        course.read(str(big))
    monkeypatch.undo()
    with pytest.raises(UserError, match="does not exist"):
        course.read(str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("x = [")
    with pytest.raises(UserError, match="not valid TOML"):
        course.read(str(bad))
