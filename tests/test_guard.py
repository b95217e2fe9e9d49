"""measure/guard.py: a real run that would not fit is refused unless forced."""

from conftest import assert_one_line_error


def test_a_real_run_that_cannot_fit_is_refused_unless_forced(cli):
    assert_one_line_error(cli("memory", "vgg19@adaptive_pool=true", "--res", "16384", "--measure"),
                          "--force", "available")
