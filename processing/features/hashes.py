"""
Perceptual hashes: pHash (64 bits, by ``imagehash``) and PDQ (256 bits, by
``pdqhash``, Meta's reference C++ compiled into a Python extension).

Both look at the luma of the whole picture at a small size (pHash 32x32, PDQ
64x64) and keep the signs of its low DCT frequencies, so recompression,
resizing and moderate brightness or contrast changes flip few bits, while
crops, rotations and mirror images move everything (see docs/recognition.md
for measured figures). PDQ also gives a quality score, 0..100: under about 50
the picture is too flat (a blank page, a uniform sky) for its hash to tell
images apart, and Meta's guidance is to ignore such hashes.

Hashes travel as lowercase hex (pHash 16 digits, PDQ 64, most significant
bit first, as Meta's tools print them) and are compared as packed bits.
"""
import imagehash
import numpy as np
import pdqhash

PHASH_BITS = 64
PDQ_BITS = 256


def phash(rgb):
    """The pHash of a PIL image, as 16 hex digits."""
    return str(imagehash.phash(rgb, hash_size=8, highfreq_factor=4))


# Index of the left-right mirror image among pdqhash.compute_dihedral's eight hashes.
PDQ_MIRROR = 5


def _hex(bits):
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_with_mirror(rgb):
    """``(hex, mirror hex, quality)``: the PDQ hash of a PIL RGB image, that of
    its left-right mirror image (same pass), and its quality 0..100."""
    dihedral, quality = pdqhash.compute_dihedral(np.asarray(rgb, dtype=np.uint8))
    return _hex(dihedral[0]), _hex(dihedral[PDQ_MIRROR]), int(quality)


def to_bytes(hex_digits, bits):
    """Packed bytes of a hash given in hex; ValueError when it is not ``bits`` bits of hex."""
    if not isinstance(hex_digits, str) or len(hex_digits) != bits // 4:
        raise ValueError(f"a {bits}-bit hash is {bits // 4} hex digits")
    return bytes.fromhex(hex_digits)


def distance(first, second, bits):
    """Normalised Hamming distance 0..1 between two packed hashes."""
    a = np.frombuffer(first, dtype=np.uint8)
    b = np.frombuffer(second, dtype=np.uint8)
    return int(np.bitwise_count(a ^ b).sum()) / bits
