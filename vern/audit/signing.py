"""The Ed25519 key that signs the trail's checkpoints (``Signer``), and the message it signs.

The key is read from ``VERN_AUDIT_SIGNING_KEY_FILE`` or derived from Vern's secret key; the same
key signs the checkpoints' C2SP notes (``vern.audit.note``) handed to witnesses, and the
certificates of deletion.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vern.audit import note
from vern.core.config import AuditSettings, Settings, audit_settings


def checkpoint_message(size: int, root: bytes, ts: int) -> bytes:
    return f"vern-audit-checkpoint/v1\n{size}\n{base64.b64encode(root).decode()}\n{ts}\n".encode()


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """The Ed25519 checkpoint key: from ``VERN_AUDIT_SIGNING_KEY_FILE`` or derived (HKDF-SHA256)
    from the secret key. Earlier public keys listed in ``VERN_AUDIT_PREVIOUS_PUBLIC_KEYS`` still
    verify old checkpoints."""

    def __init__(self, settings: Settings, audit: AuditSettings | None = None) -> None:
        audit = audit or audit_settings()
        if audit.signing_key_file is not None:
            try:
                seed = base64.b64decode(audit.signing_key_file.read_text().strip())
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"VERN_AUDIT_SIGNING_KEY_FILE: cannot read a base64 key: {exc}"
                ) from exc
            if len(seed) != 32:
                raise ValueError("VERN_AUDIT_SIGNING_KEY_FILE: the key must be 32 bytes")
        else:
            seed = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"vern-audit",
                info=b"checkpoint signing key v1",
            ).derive(settings.secret_bytes)
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._private.public_key()
        self.key_id = key_id_of(self.public)
        self.keys: dict[str, Ed25519PublicKey] = {self.key_id: self.public}
        for item in audit.previous_public_keys:
            pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(item))
            self.keys[key_id_of(pub)] = pub

    def public_b64(self) -> str:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, size: int, root: bytes, ts: int) -> bytes:
        return self._private.sign(checkpoint_message(size, root, ts))

    def note(self, origin: str, size: int, root: bytes) -> str:
        """The checkpoint as a C2SP signed note (``vern.audit.note``), signed by this key with
        the origin as key name. Only for a tree head whose own signature was checked."""

        return note.sign(note.checkpoint_text(origin, size, root), origin, self._private)

    def sign_text(self, text: str, name: str) -> str:
        """Any other statement Vern signs with the same key (a certificate of deletion), as a
        C2SP signed note with ``name`` as key name; ``vkey(name)`` verifies it."""

        return note.sign(text, name, self._private)

    def vkey(self, origin: str) -> str:
        """The C2SP verifier key of the checkpoint notes (``origin+keyid+base64``)."""

        return note.vkey(origin, note.raw_public(self.public))

    def verify(self, key_id: str, size: int, root: bytes, ts: int, signature: bytes) -> bool:
        key = self.keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(bytes(signature), checkpoint_message(size, root, ts))
        except InvalidSignature:
            return False
        return True
