"""
SHA-256 of text, the one way istore names things by their content: the unique
hash of a key (``Item.key_hash``), lock names, cache keys and ETags.

Text is encoded as UTF-8, with lone surrogates passed through
(``surrogatepass``) so that no string, however odd, fails to hash.
"""
import hashlib


def sha256_hex(text):
    """The hex SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def digest(*parts):
    """A short, stable, quote-free digest of ``parts`` (for ETags and cache keys):
    each part as text followed by a NUL, so ``("ab", "c")`` and ``("a", "bc")`` differ."""
    return sha256_hex("".join(f"{part}\0" for part in parts))[:40]
