"""Trust checks give the numbers they gave before copies were de-duplicated and scored packed by length.

``fixtures/golden/trust_scalars.json`` was written by ``fixtures/golden/make_trust_golden.py`` with the
package of commit 0d6dc1e (each ranking's copies scored on their own, every copy scored). Batching copies of
other lengths together changes only float rounding (padding), so 1e-5 relative.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures.golden.make_trust_golden import trust_numbers
from tiny_models import FAMILIES

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "golden" / "trust_scalars.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("family", FAMILIES)
def test_trust_numbers_unchanged(tiny_loaded: Callable, family: str) -> None:
    got = trust_numbers(tiny_loaded(family))
    want = GOLDEN[family]
    assert set(want) <= set(got)  # every number there was (new ones may be added)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=f"{family} {key}")
