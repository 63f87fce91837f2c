"""Secrets at rest: what the database keeps encrypted (webhook signing secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys derived from
HINDSIGHT_SECRET_KEY: one or more comma-separated strings of at least 32
characters, each stretched into a Fernet key with HKDF-SHA256; the first
encrypts, every one decrypts, so a key is rotated by putting the new one first
and keeping the old one after it. Standalone mode without the variable
generates a key into the data directory (`secret_key`, mode 0600); the
distributed mode requires it (a Kubernetes Secret in deploy/k8s).

A sealed value is `enc:v1:<Fernet token>`. A value without that prefix is a
plaintext row from before encryption: it is read as it is, and sealed by the
`0005_secrets_at_rest` migration (or at the next start of results).
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs.private_files import make_private_dir, write_private_text

PREFIX = "enc:v1:"
MIN_KEY_LENGTH = 32
KEY_FILE = "secret_key"
_HKDF_INFO = b"hindsight secrets at rest v1"


class SecretKeyError(ValueError):
    """HINDSIGHT_SECRET_KEY is missing or unusable, or a sealed value does not open with it."""


def _fernet(text: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(text.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(raw))


class SecretBox:
    """Seals and opens the secrets the database keeps."""

    def __init__(self, key_text: str) -> None:
        keys = [k.strip() for k in key_text.split(",") if k.strip()]
        if not keys:
            raise SecretKeyError("HINDSIGHT_SECRET_KEY is empty")
        short = [i for i, k in enumerate(keys) if len(k) < MIN_KEY_LENGTH]
        if short:
            raise SecretKeyError(f"HINDSIGHT_SECRET_KEY: every key must be at least {MIN_KEY_LENGTH} characters")
        self._fernet = MultiFernet([_fernet(k) for k in keys])

    @staticmethod
    def is_sealed(value: str) -> bool:
        return value.startswith(PREFIX)

    def seal(self, plain: str) -> str:
        """`enc:v1:<token>`; a value already sealed is returned as it is."""
        if self.is_sealed(plain):
            return plain
        return PREFIX + self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The plaintext of a sealed value; a legacy plaintext value as it is."""
        if not self.is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, UnicodeError):
            raise SecretKeyError(
                "a stored secret does not decrypt with HINDSIGHT_SECRET_KEY (was the key changed? "
                "keep the old key after the new one, comma-separated)"
            ) from None


def key_file(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def ensure_key_file(data_dir: Path) -> str:
    """The standalone key kept in the data directory, created (0600) on first use."""
    path = key_file(data_dir)
    if not path.exists():
        make_private_dir(path.parent)
        try:
            write_private_text(path, secrets.token_urlsafe(48))
        except FileExistsError:  # written concurrently: use that one
            pass
    path.chmod(0o600)
    return path.read_text().strip()


def key_text_for(secret_key: str, standalone: bool, data_dir: Path) -> str:
    """HINDSIGHT_SECRET_KEY, or (standalone only) the data directory's key; SecretKeyError otherwise."""
    if secret_key.strip():
        return secret_key
    if standalone:
        return ensure_key_file(data_dir)
    raise SecretKeyError(
        "the distributed mode needs HINDSIGHT_SECRET_KEY (32+ random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`): it encrypts the secrets the database keeps"
    )
