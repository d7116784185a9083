"""Checks the Keyward-Signature header of a webhook request, with Python's standard library.

As a script: python3 verify.py WHSEC_SECRET 'KEYWARD-SIGNATURE HEADER' < body.json
"""
import hashlib
import hmac
import sys
import time


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True when `header` signs the raw `body` with `secret` and is under `tolerance` s old."""
    fields = [part.strip().split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    signatures = [value for key, value in fields if key == "v1"]
    if not timestamps or not timestamps[0].isdigit():
        return False
    if abs(time.time() - int(timestamps[0])) > tolerance:
        return False  # too old (or too new): a replay
    signed = timestamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


if __name__ == "__main__":
    valid = verify(sys.argv[1], sys.argv[2], sys.stdin.buffer.read())
    print("valid" if valid else "INVALID")
    sys.exit(0 if valid else 1)
