"""archlab/errors.py."""


def test_first_line_of_an_error_message():
    from archlab.errors import first_line

    assert first_line(RuntimeError("shapes differ\n  detail")) == "shapes differ"
    assert first_line(KeyError()) == "KeyError" and first_line(ValueError("  "), "") == ""
