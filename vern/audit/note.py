"""Checkpoints as C2SP signed notes (``tlog-checkpoint``), and witness cosignatures
(``tlog-cosignature``, Ed25519 ``cosignature/v1``), so that transparency-log tooling can read and
verify Vern's tree heads.

A checkpoint note::

    <origin>\\n
    <tree size>\\n
    <base64 root hash>\\n
    \\n
    — <key name> <base64(key id || Ed25519 signature of the three lines)>\\n

The key name is the origin; the key id is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.
A verifier key (``vkey``) is ``<name>+<hex key id>+<base64(0x01 || public key)>``. A cosignature
line has the key id of type 0x04 and, after it, a big-endian 64-bit time (seconds) and the
Ed25519 signature of ``cosignature/v1\\ntime <t>\\n`` followed by the note's text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"
MAX_SIGNATURES = 16


class NoteError(ValueError):
    """A note that cannot be read or whose signature does not verify."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public: bytes, kind: int = ED25519) -> bytes:
    """The 4-byte key id of ``name`` and a raw public key of signature type ``kind``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or any(
            ord(c) < 0x20 for c in name):
        raise NoteError(f"key name {name!r}: must be non-empty, without spaces or '+'")


def vkey(name: str, public: bytes, kind: int = ED25519) -> str:
    """The verifier key text: ``name+hex key id+base64(type || public key)``."""
    _check_name(name)
    return f"{name}+{key_id(name, public, kind).hex()}+" + base64.b64encode(
        bytes([kind]) + public).decode()


@dataclass(frozen=True)
class Verifier:
    name: str
    kind: int
    public: bytes
    id: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """A ``vkey`` (the base64 part may itself hold '+')."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key: expected name+keyid+base64")
        name, hexid, material = parts
        _check_name(name)
        try:
            raw = base64.b64decode(material, validate=True)
            wanted = bytes.fromhex(hexid)
        except (binascii.Error, ValueError) as exc:
            raise NoteError(f"verifier key: {exc}") from exc
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1) or len(wanted) != 4:
            raise NoteError("verifier key: not an Ed25519 key (type 0x01 or 0x04)")
        found = key_id(name, raw[1:], raw[0])
        if found != wanted:
            raise NoteError("verifier key: the key id does not match the key")
        return cls(name, raw[0], raw[1:], found)

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint (three lines, each ending in a newline)."""
    if "\n" in origin or not origin:
        raise NoteError("origin: one non-empty line")
    if len(root) != 32:
        raise NoteError("root: 32 bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def signature_line(name: str, key: bytes, signature: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(key + signature).decode()}\n"


def sign(text: str, name: str, private: Ed25519PrivateKey) -> str:
    """A signed note of ``text`` with one Ed25519 signature (type 0x01)."""
    _check_name(name)
    kid = key_id(name, raw_public(private.public_key()))
    return text + "\n" + signature_line(name, kid, private.sign(text.encode()))


def cosign(text: str, name: str, private: Ed25519PrivateKey, when: int) -> str:
    """A ``cosignature/v1`` signature line for the note ``text`` at POSIX time ``when``."""
    _check_name(name)
    kid = key_id(name, raw_public(private.public_key()), COSIGNATURE_V1)
    stamp = struct.pack(">Q", when)
    message = f"cosignature/v1\ntime {when}\n".encode() + text.encode()
    return signature_line(name, kid, stamp + private.sign(message))


@dataclass(frozen=True)
class Signature:
    name: str
    id: bytes
    body: bytes  # after the key id: the signature (0x01) or time and signature (0x04)


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, data: str) -> Note:
        """Split a signed note into its text and signature lines (nothing verified yet)."""
        if len(data) > 64 * 1024:
            raise NoteError("note: too large")
        if any(ord(c) < 0x20 and c != "\n" for c in data):
            raise NoteError("note: control characters")
        if not data.endswith("\n"):
            raise NoteError("note: must end in a newline")
        cut = data.rfind("\n\n")
        if cut < 0:
            raise NoteError("note: no blank line before the signatures")
        text, sigs = data[:cut + 1], data[cut + 2:]
        out = []
        for line in sigs.splitlines():
            if not line.startswith(DASH + " "):
                raise NoteError("note: a signature line must start with an em dash")
            parts = line[2:].split(" ")
            if len(parts) != 2:
                raise NoteError("note: a signature line is '— name base64'")
            name, b64 = parts
            _check_name(name)
            try:
                blob = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise NoteError(f"note: signature of {name}: {exc}") from exc
            if len(blob) < 5:
                raise NoteError(f"note: signature of {name}: too short")
            out.append(Signature(name, blob[:4], blob[4:]))
        if not out:
            raise NoteError("note: no signature")
        if len(out) > MAX_SIGNATURES:
            raise NoteError("note: too many signatures")
        return cls(text, tuple(out))

    def verified_by(self, verifier: Verifier) -> bool:
        """Whether ``verifier`` signed this note: False when it did not sign; a signature line
        of its name and key id that does not verify is an error (the note is rejected)."""
        found = False
        for sig in self.signatures:
            if sig.name != verifier.name or sig.id != verifier.id:
                continue  # another key: ignored
            if verifier.kind == ED25519:
                ok = verifier.check(self.text.encode(), sig.body)
            else:
                ok = len(sig.body) == 72 and verifier.check(
                    f"cosignature/v1\ntime {struct.unpack('>Q', sig.body[:8])[0]}\n".encode()
                    + self.text.encode(), sig.body[8:])
            if not ok:
                raise NoteError(f"note: the signature of {verifier.name} does not verify")
            found = True
        return found


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(text: str) -> CheckpointBody:
    """The origin, size and root of a checkpoint's note text (extension lines ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("checkpoint: origin, size and root lines expected")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise NoteError("checkpoint: the size is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"checkpoint: root: {exc}") from exc
    if len(root) != 32 or not origin:
        raise NoteError("checkpoint: an origin and a 32-byte root are needed")
    return CheckpointBody(origin, int(size_s), root)


def origin_of(configured: str, base_url: str) -> str:
    """The log's origin: the setting, else ``<host of base URL>/audit``."""
    if configured:
        _check_name(configured)
        return configured
    host = urlsplit(base_url).netloc or "vern.invalid"
    return f"{host}/audit"
