"""attnviz: attention reports for Hugging Face transformers."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("attnviz")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from attnviz.notebook import Explanation, Explanations, Scores, explain, load

__all__ = ["Explanation", "Explanations", "Scores", "__version__", "explain", "load"]
# The notebook API needs torch and transformers: imported when first used, so `import attnviz` (and the CLI's
# start-up) stays light.
_NOTEBOOK = frozenset({"Explanation", "Explanations", "Scores", "explain", "load"})


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK:
        from attnviz import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
