"""Loading sklearn models without trusting what the file says it holds.

skops refuses any type not on its allow-list; ``trusted=get_untrusted_types(file)`` would
trust whatever the file names - as unsafe as pickle. Our logistic pipelines (imputer, scaler,
logistic regression) need exactly these types beyond skops' defaults; a file naming any other
type (a function, a foreign class) is refused with the list of what it asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

# Types our sklearn candidates need beyond skops' own defaults (measured with
# skops.io.get_untrusted_types on the standard- and quantile-scaled pipelines). A new
# estimator in pipeline/training that needs more: add its types here, deliberately.
SKOPS_TRUSTED_TYPES: Final[tuple[str, ...]] = ("numpy.dtype",)


class UntrustedModelError(ValueError):
    """The model file names types outside :data:`SKOPS_TRUSTED_TYPES`."""


def load_skops(file: Path) -> Any:
    """Load ``file`` trusting only :data:`SKOPS_TRUSTED_TYPES` (and skops' safe defaults)."""
    import skops.io as sio

    extra = sorted(set(sio.get_untrusted_types(file=file)) - set(SKOPS_TRUSTED_TYPES))
    if extra:
        raise UntrustedModelError(
            f"{file} holds types outside the allow-list ({', '.join(extra)}); it was not written "
            "by this project's training - retrain (`churn train`) instead of loading it"
        )
    return sio.load(file, trusted=list(SKOPS_TRUSTED_TYPES))
