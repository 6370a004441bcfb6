"""Settings read from the environment, in one place, when an entry point asks (never at import).

- ``POISONGUARD_SIGNING_KEY``: the secret that signs ledger records and verdicts (HMAC-SHA256);
  ``POISONGUARD_SIGNING_KEY_ID`` optionally names it (default: derived from the key).
- ``POISONGUARD_STORE``: the root of the dataset stores, when ``--store`` is not given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from poisonguard.errors import UsageError
from poisonguard.kernel.signing import SigningKey

SIGNING_KEY = "POISONGUARD_SIGNING_KEY"
SIGNING_KEY_ID = "POISONGUARD_SIGNING_KEY_ID"
STORE = "POISONGUARD_STORE"


def signing_key(env: Mapping[str, str] | None = None) -> SigningKey | None:
    """The configured signing key, or None when no key is set."""
    env = os.environ if env is None else env
    text = env.get(SIGNING_KEY)
    return SigningKey.from_text(text, env.get(SIGNING_KEY_ID) or None) if text else None


def store_root(given: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """``--store`` if given, else ``$POISONGUARD_STORE``."""
    env = os.environ if env is None else env
    root = given or env.get(STORE)
    if not root:
        raise UsageError(f"no store given. Pass --store DIR or set {STORE}.")
    return Path(root)
