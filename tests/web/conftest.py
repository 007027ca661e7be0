"""The web tests' shared helper modules get pytest's assert rewriting (their failing checks show values)."""

import pytest

pytest.register_assert_rewrite("proxy_helpers")
