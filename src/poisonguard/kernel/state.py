"""The fitted state: everything a check learns from trusted data only, computed once per
(reference, holdout, golden, label, policy section, poisonguard version) and reused by every
batch gated against them.

A state directory holds one entry per (check, trusted inputs, spec) under its content address,
the SHA-256 of all of them::

    <state>/<address>/fitted.npz       numbers (loaded with allow_pickle=False)
    <state>/<address>/fitted.json      JSON-safe metadata
    <state>/<address>/manifest.json    what it is, the SHA-256 of both files; HMAC-signed with a key

Nothing is ever unpickled. An entry is written in a temporary directory and renamed into place:
two processes building the same entry race on the rename, one wins, and neither reads a half
written entry. Every load checks the manifest (its signature when a key is configured, every
file's SHA-256, the address and the version); an entry that fails is never used: without a key
the run says so on stderr and rebuilds it, with a key it refuses (exit 5). A state never changes
a verdict: a warm run scores with exactly what a cold run fits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from poisonguard import __version__
from poisonguard.errors import PromotionRefused, UsageError
from poisonguard.kernel.hashing import hash_file
from poisonguard.kernel.parts import Fitted
from poisonguard.kernel.signing import SigningKey, canonical, document_sha256, sign_document

log = logging.getLogger("poisonguard")
FILES = ("fitted.npz", "fitted.json")


class StateRefused(PromotionRefused):
    """A fitted state failed its check while a signing key is configured (exit code 5)."""


def address(*parts: Any) -> str:
    """The content address of an entry: SHA-256 of the canonical JSON of ``parts`` and the version."""
    return hashlib.sha256(canonical([__version__, *parts])).hexdigest()


class StateDir:
    """A directory of fitted-state entries (created if missing). ``key`` signs new manifests and
    is required of every manifest loaded; without it, manifests carry only their hashes."""

    def __init__(self, root: str | Path, key: SigningKey | None = None) -> None:
        self.root = Path(root)
        self.key = key
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"--state {self.root} is a file, not a directory. Name a directory for the fitted "
                             "state (it is created if missing).")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--state {self.root} cannot be created ({e.strerror}). Name a directory you can "
                             "write.") from None
        self.hits: list[str] = []
        self.built: list[str] = []

    def fitted(self, what: str, parts: tuple[Any, ...], compute: Callable[[], Fitted]) -> Fitted:
        """The entry for ``what`` and ``parts`` (everything its value depends on, JSON-safe), or
        ``compute()`` stored there."""
        key = address(what, *parts)
        loaded = self._load(what, key)
        if loaded is not None:
            self.hits.append(what)
            return loaded
        value = compute()
        self._save(what, key, value)
        self.built.append(what)
        return value

    def _load(self, what: str, key: str) -> Fitted | None:
        entry = self.root / key
        if not entry.exists():
            return None
        problem = self._problem(entry, key)
        if problem is None:
            try:
                return Fitted.load(entry, "fitted")
            except (OSError, ValueError, KeyError) as e:
                problem = f"it cannot be read ({type(e).__name__}: {e})"
        if self.key is not None:
            raise StateRefused(f"fitted state {entry} ({what}) failed its check: {problem}. With a signing key a "
                               "state that fails is refused; remove the entry to rebuild it from trusted data.")
        log.warning("fitted state %s (%s) is not used: %s; rebuilding it", entry, what, problem)
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def _problem(self, entry: Path, key: str) -> str | None:
        """Why the entry cannot be trusted, or ``None``."""
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            return f"manifest.json is missing or not JSON ({type(e).__name__})"
        if self.key is not None:
            sig = manifest.get("signature")
            if not (isinstance(sig, Mapping) and sig.get("key_id") == self.key.key_id
                    and self.key.verify(document_sha256(manifest).encode(), str(sig.get("hmac")))):
                return "its manifest is not signed with the configured key"
        if manifest.get("address") != key:
            return "its manifest is for another address"
        if manifest.get("version") != __version__:
            return f"it was built by poisonguard {manifest.get('version')}, not {__version__}"
        files: Mapping[str, str] = manifest.get("files", {})
        for name in FILES:
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            if files.get(name) != hash_file(path):
                return f"{name} does not match its SHA-256 in the manifest (edited)"
        return None

    def _save(self, what: str, key: str, value: Fitted) -> None:
        entry = self.root / key
        tmp = self.root / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        value.save(tmp, "fitted")
        manifest = {"address": key, "what": what, "version": __version__,
                    "files": {name: hash_file(tmp / name) for name in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(sign_document(manifest, self.key), indent=2, sort_keys=True))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.rename(tmp, entry)  # atomic; fails if another process got there first
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # the other process's entry is the same content
