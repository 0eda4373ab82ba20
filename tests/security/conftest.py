"""The security regression suite: one test (or one parametrized family) per attack class.

Tests here may reuse the end-to-end helpers in tests/e2e (identity_support, arm_support, mi_support, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

_E2E = str(Path(__file__).resolve().parent.parent / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)
