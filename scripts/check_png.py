#!/usr/bin/env python3
"""Checks PNG files with Python's own zlib, as a second opinion on aha's encoder (src/io/png.cpp).

For each file: the signature, every chunk's CRC-32, IHDR first and IEND last, the IDAT stream inflated by
zlib (which also checks the Adler-32 trailer), the amount of image data, and valid row filter types. Prints one
line per file and exits non-zero when any file fails. Not run by CI; standard library only.

    scripts/check_png.py run/plot.png /tmp/aha_test_plot_file/plot.png
"""
import struct
import sys
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def check(path):
    data = open(path, "rb").read()
    if data[:8] != SIGNATURE:
        raise ValueError("bad signature")
    at, chunks, idat, ihdr = 8, [], b"", None
    while at < len(data):
        if at + 12 > len(data):
            raise ValueError(f"truncated chunk header at byte {at}")
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        if len(body) != length or at + 12 + length > len(data):
            raise ValueError(f"chunk {kind!r} runs past the end")
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"CRC mismatch in chunk {kind!r}")
        chunks.append(kind.decode("latin-1"))
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    if not chunks or chunks[0] != "IHDR" or chunks[-1] != "IEND":
        raise ValueError(f"chunk order {chunks}: IHDR must come first and IEND last")
    width, height, depth, colour, compression, filtering, interlace = ihdr
    if depth != 8 or colour not in CHANNELS or compression or filtering or interlace:
        raise ValueError(f"unexpected IHDR {ihdr}")
    raw = zlib.decompress(idat)  # raises on a bad stream or Adler-32 trailer
    stride = width * CHANNELS[colour]
    if len(raw) != height * (stride + 1):
        raise ValueError(f"{len(raw)} bytes of image data, expected {height * (stride + 1)}")
    filters = {raw[y * (stride + 1)] for y in range(height)}
    if max(filters) > 4:
        raise ValueError(f"invalid row filter types {sorted(filters)}")
    return (f"{width}x{height} {len(data)} bytes ({len(raw) / len(data):.1f}x smaller than raw), "
            f"chunks {' '.join(chunks)}, row filters {sorted(filters)}")


def main(paths):
    if not paths:
        print(__doc__.strip())
        return 2
    failed = 0
    for path in paths:
        try:
            print(f"ok   {path}: {check(path)}")
        except (OSError, ValueError, zlib.error) as e:
            print(f"FAIL {path}: {e}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
