"""fsbrain: a financial security brain.

One engine turns events (loan applications, payments, HTTP requests, auth-log lines, flow records)
into decisions and alerts with reasons. See ``fsbrain.core`` for the shared data model.
"""

import os as _os

# zen-engine (Rust) captures a full backtrace for every expression error when RUST_BACKTRACE is set;
# that costs milliseconds per failing rule. Rule errors are reported by fsbrain itself.
_os.environ["RUST_BACKTRACE"] = "0"

# modules also compiled with Cython load compiled only when built from the .py on disk (fsbrain.compiled)
from fsbrain import compiled as _compiled  # noqa: E402

_compiled.install()

__version__ = "0.1.0"

__all__ = ["__version__"]
