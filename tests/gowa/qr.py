"""Reads the text of a QR code back out of a PNG, in pure Python (zlib only),
the way a phone camera reads the admin's screen: the contract test and the
client fetch the `qr_link` PNG and give its payload to the simulated phone.

Made for clean, axis-aligned renderings (as a server draws them): it finds
the symbol's bounding box and module size from the top-left finder pattern,
samples each module's centre, and reads the data codewords without error
correction (a clean image has no errors; the simulator, which checks the
payload, is the judge). Numeric, alphanumeric and byte segments.
The block tables are ISO/IEC 18004 Table 9, as the `qrcode` crate lists them.
"""

import struct
import zlib

# (L, M, Q, H) per version 1..40
EC_PER_BLOCK = (
    (7, 10, 13, 17),  # 1
    (10, 16, 22, 28),  # 2
    (15, 26, 18, 22),  # 3
    (20, 18, 26, 16),  # 4
    (26, 24, 18, 22),  # 5
    (18, 16, 24, 28),  # 6
    (20, 18, 18, 26),  # 7
    (24, 22, 22, 26),  # 8
    (30, 22, 20, 24),  # 9
    (18, 26, 24, 28),  # 10
    (20, 30, 28, 24),  # 11
    (24, 22, 26, 28),  # 12
    (26, 22, 24, 22),  # 13
    (30, 24, 20, 24),  # 14
    (22, 24, 30, 24),  # 15
    (24, 28, 24, 30),  # 16
    (28, 28, 28, 28),  # 17
    (30, 26, 28, 28),  # 18
    (28, 26, 26, 26),  # 19
    (28, 26, 30, 28),  # 20
    (28, 26, 28, 30),  # 21
    (28, 28, 30, 24),  # 22
    (30, 28, 30, 30),  # 23
    (30, 28, 30, 30),  # 24
    (26, 28, 30, 30),  # 25
    (28, 28, 28, 30),  # 26
    (30, 28, 30, 30),  # 27
    (30, 28, 30, 30),  # 28
    (30, 28, 30, 30),  # 29
    (30, 28, 30, 30),  # 30
    (30, 28, 30, 30),  # 31
    (30, 28, 30, 30),  # 32
    (30, 28, 30, 30),  # 33
    (30, 28, 30, 30),  # 34
    (30, 28, 30, 30),  # 35
    (30, 28, 30, 30),  # 36
    (30, 28, 30, 30),  # 37
    (30, 28, 30, 30),  # 38
    (30, 28, 30, 30),  # 39
    (30, 28, 30, 30),  # 40
)
# (L, M, Q, H) per version: (data bytes, blocks, data bytes, blocks)
DATA_BLOCKS = (
    ((19, 1, 0, 0), (16, 1, 0, 0), (13, 1, 0, 0), (9, 1, 0, 0)),  # 1
    ((34, 1, 0, 0), (28, 1, 0, 0), (22, 1, 0, 0), (16, 1, 0, 0)),  # 2
    ((55, 1, 0, 0), (44, 1, 0, 0), (17, 2, 0, 0), (13, 2, 0, 0)),  # 3
    ((80, 1, 0, 0), (32, 2, 0, 0), (24, 2, 0, 0), (9, 4, 0, 0)),  # 4
    ((108, 1, 0, 0), (43, 2, 0, 0), (15, 2, 16, 2), (11, 2, 12, 2)),  # 5
    ((68, 2, 0, 0), (27, 4, 0, 0), (19, 4, 0, 0), (15, 4, 0, 0)),  # 6
    ((78, 2, 0, 0), (31, 4, 0, 0), (14, 2, 15, 4), (13, 4, 14, 1)),  # 7
    ((97, 2, 0, 0), (38, 2, 39, 2), (18, 4, 19, 2), (14, 4, 15, 2)),  # 8
    ((116, 2, 0, 0), (36, 3, 37, 2), (16, 4, 17, 4), (12, 4, 13, 4)),  # 9
    ((68, 2, 69, 2), (43, 4, 44, 1), (19, 6, 20, 2), (15, 6, 16, 2)),  # 10
    ((81, 4, 0, 0), (50, 1, 51, 4), (22, 4, 23, 4), (12, 3, 13, 8)),  # 11
    ((92, 2, 93, 2), (36, 6, 37, 2), (20, 4, 21, 6), (14, 7, 15, 4)),  # 12
    ((107, 4, 0, 0), (37, 8, 38, 1), (20, 8, 21, 4), (11, 12, 12, 4)),  # 13
    ((115, 3, 116, 1), (40, 4, 41, 5), (16, 11, 17, 5), (12, 11, 13, 5)),  # 14
    ((87, 5, 88, 1), (41, 5, 42, 5), (24, 5, 25, 7), (12, 11, 13, 7)),  # 15
    ((98, 5, 99, 1), (45, 7, 46, 3), (19, 15, 20, 2), (15, 3, 16, 13)),  # 16
    ((107, 1, 108, 5), (46, 10, 47, 1), (22, 1, 23, 15), (14, 2, 15, 17)),  # 17
    ((120, 5, 121, 1), (43, 9, 44, 4), (22, 17, 23, 1), (14, 2, 15, 19)),  # 18
    ((113, 3, 114, 4), (44, 3, 45, 11), (21, 17, 22, 4), (13, 9, 14, 16)),  # 19
    ((107, 3, 108, 5), (41, 3, 42, 13), (24, 15, 25, 5), (15, 15, 16, 10)),  # 20
    ((116, 4, 117, 4), (42, 17, 0, 0), (22, 17, 23, 6), (16, 19, 17, 6)),  # 21
    ((111, 2, 112, 7), (46, 17, 0, 0), (24, 7, 25, 16), (13, 34, 0, 0)),  # 22
    ((121, 4, 122, 5), (47, 4, 48, 14), (24, 11, 25, 14), (15, 16, 16, 14)),  # 23
    ((117, 6, 118, 4), (45, 6, 46, 14), (24, 11, 25, 16), (16, 30, 17, 2)),  # 24
    ((106, 8, 107, 4), (47, 8, 48, 13), (24, 7, 25, 22), (15, 22, 16, 13)),  # 25
    ((114, 10, 115, 2), (46, 19, 47, 4), (22, 28, 23, 6), (16, 33, 17, 4)),  # 26
    ((122, 8, 123, 4), (45, 22, 46, 3), (23, 8, 24, 26), (15, 12, 16, 28)),  # 27
    ((117, 3, 118, 10), (45, 3, 46, 23), (24, 4, 25, 31), (15, 11, 16, 31)),  # 28
    ((116, 7, 117, 7), (45, 21, 46, 7), (23, 1, 24, 37), (15, 19, 16, 26)),  # 29
    ((115, 5, 116, 10), (47, 19, 48, 10), (24, 15, 25, 25), (15, 23, 16, 25)),  # 30
    ((115, 13, 116, 3), (46, 2, 47, 29), (24, 42, 25, 1), (15, 23, 16, 28)),  # 31
    ((115, 17, 0, 0), (46, 10, 47, 23), (24, 10, 25, 35), (15, 19, 16, 35)),  # 32
    ((115, 17, 116, 1), (46, 14, 47, 21), (24, 29, 25, 19), (15, 11, 16, 46)),  # 33
    ((115, 13, 116, 6), (46, 14, 47, 23), (24, 44, 25, 7), (16, 59, 17, 1)),  # 34
    ((121, 12, 122, 7), (47, 12, 48, 26), (24, 39, 25, 14), (15, 22, 16, 41)),  # 35
    ((121, 6, 122, 14), (47, 6, 48, 34), (24, 46, 25, 10), (15, 2, 16, 64)),  # 36
    ((122, 17, 123, 4), (46, 29, 47, 14), (24, 49, 25, 10), (15, 24, 16, 46)),  # 37
    ((122, 4, 123, 18), (46, 13, 47, 32), (24, 48, 25, 14), (15, 42, 16, 32)),  # 38
    ((117, 20, 118, 4), (47, 40, 48, 7), (24, 43, 25, 22), (15, 10, 16, 67)),  # 39
    ((118, 19, 119, 6), (47, 18, 48, 31), (24, 34, 25, 34), (15, 20, 16, 61)),  # 40
)

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# Format information's error correction bits -> column in the tables above.
EC_COLUMN = {1: 0, 0: 1, 3: 2, 2: 3}  # L, M, Q, H


class QrError(ValueError):
    pass


def png_greyscale(data):
    """(width, height, rows of 0..255 luminance) of a non-interlaced 8-bit PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise QrError("not a PNG")
    pos, idat, header, palette = 8, b"", None, None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"PLTE":
            palette = [chunk[i:i + 3] for i in range(0, len(chunk), 3)]
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    if header is None:
        raise QrError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise QrError(f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
            elif kind != 0:
                raise QrError(f"bad PNG filter {kind}")
        prev = line
        if colour == 3:
            lum = [sum(palette[v]) // 3 for v in line]
        elif channels >= 3:
            lum = [sum(line[i:i + 3]) // 3 for i in range(0, stride, channels)]
        else:
            lum = list(line[::channels])
        rows.append(lum)
    return width, height, rows


def modules(width, height, rows):
    """The symbol as a square matrix of booleans (True = dark)."""
    dark = [[v < 128 for v in row] for row in rows]
    ys = [y for y in range(height) if any(dark[y])]
    if not ys:
        raise QrError("no dark pixel in the image")
    top, bottom = ys[0], ys[-1]
    left = min(row.index(True) for row in dark if True in row)
    right = max(width - 1 - row[::-1].index(True) for row in dark if True in row)
    run = 0
    while left + run <= right and dark[top][left + run]:
        run += 1
    if run % 7:
        raise QrError("the top-left finder pattern is not 7 modules wide")
    size_px = right - left + 1
    module = run / 7
    size = round(size_px / module)
    if abs(size * module - size_px) > module / 2 or (size - 17) % 4 or bottom - top + 1 != size_px:
        raise QrError("not a square QR symbol of a valid size")
    return [[dark[int(top + (r + 0.5) * module)][int(left + (c + 0.5) * module)]
             for c in range(size)] for r in range(size)]


def alignment_positions(version):
    if version == 1:
        return []
    count = version // 7 + 2
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    size = version * 4 + 17
    return sorted([6] + [size - 7 - i * step for i in range(count - 1)])


def function_map(version):
    size = version * 4 + 17
    f = [[False] * size for _ in range(size)]

    def fill(r0, c0, h, w):
        for r in range(max(r0, 0), min(r0 + h, size)):
            for c in range(max(c0, 0), min(c0 + w, size)):
                f[r][c] = True

    fill(0, 0, 9, 9)
    fill(0, size - 8, 9, 8)
    fill(size - 8, 0, 8, 9)
    fill(6, 0, 1, size)
    fill(0, 6, size, 1)
    pos = alignment_positions(version)
    for r in pos:
        for c in pos:
            if (r, c) in ((6, 6), (6, pos[-1]), (pos[-1], 6)):
                continue
            fill(r - 2, c - 2, 5, 5)
    if version >= 7:
        fill(0, size - 11, 6, 3)
        fill(size - 11, 0, 3, 6)
    return f


def format_info(m):
    """(error correction bits, mask) from the copy around the top-left finder."""
    bits = 0
    coords = [(i, 8) for i in range(6)] + [(7, 8), (8, 8), (8, 7)] + [(8, 14 - i) for i in range(9, 15)]
    for i, (r, c) in enumerate(coords):
        bits |= m[r][c] << i
    best = None
    for data in range(32):
        rem = data
        for _ in range(10):
            rem = (rem << 1) ^ ((rem >> 9) * 0x537)
        word = ((data << 10) | rem) ^ 0x5412
        distance = bin(word ^ bits).count("1")
        if best is None or distance < best[0]:
            best = (distance, data)
    if best[0] > 3:
        raise QrError("unreadable format information")
    return best[1] >> 3, best[1] & 7


MASKS = [
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: r * c % 2 + r * c % 3 == 0,
    lambda r, c: (r * c % 2 + r * c % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + r * c % 3) % 2 == 0,
]


def codewords(m, version, mask):
    size = len(m)
    func = function_map(version)
    invert = MASKS[mask]
    bits = []
    right = size - 1
    while right >= 1:
        if right == 6:
            right = 5
        upward = ((right + 1) & 2) == 0
        for vert in range(size):
            r = size - 1 - vert if upward else vert
            for c in (right, right - 1):
                if not func[r][c]:
                    bits.append(m[r][c] ^ invert(r, c))
        right -= 2
    return [int("".join("1" if b else "0" for b in bits[i:i + 8]), 2)
            for i in range(0, len(bits) - 7, 8)]


def data_codewords(words, version, ec_bits):
    d1, b1, d2, b2 = DATA_BLOCKS[version - 1][EC_COLUMN[ec_bits]]
    sizes = [d1] * b1 + [d2] * b2
    blocks = [[] for _ in sizes]
    it = iter(words)
    for i in range(max(sizes)):
        for block, size in zip(blocks, sizes):
            if i < size:
                block.append(next(it))
    return [w for block in blocks for w in block]


def decode_segments(data, version):
    bits = "".join(f"{w:08b}" for w in data)
    pos, out = 0, bytearray()
    band = 0 if version <= 9 else (1 if version <= 26 else 2)

    def take(n):
        nonlocal pos
        if pos + n > len(bits):
            raise QrError("truncated data")
        value = int(bits[pos:pos + n], 2)
        pos += n
        return value

    while pos + 4 <= len(bits):
        mode = take(4)
        if mode == 0:
            break
        if mode == 1:  # numeric
            n = take((10, 12, 14)[band])
            while n >= 3:
                out += f"{take(10):03d}".encode()
                n -= 3
            if n:
                out += f"{take(4 if n == 1 else 7):0{n}d}".encode()
        elif mode == 2:  # alphanumeric
            n = take((9, 11, 13)[band])
            while n >= 2:
                v = take(11)
                out += (ALNUM[v // 45] + ALNUM[v % 45]).encode()
                n -= 2
            if n:
                out += ALNUM[take(6)].encode()
        elif mode == 4:  # byte
            n = take((8, 16, 16)[band])
            out += bytes(take(8) for _ in range(n))
        elif mode == 7:  # ECI: UTF-8 is the only one expected; skip the designator
            take(8)
        else:
            raise QrError(f"unsupported segment mode {mode}")
    return out.decode("utf-8")


def decode_png(data):
    """The text encoded in the QR code drawn in PNG `data`."""
    m = modules(*png_greyscale(data))
    version = (len(m) - 17) // 4
    if not 1 <= version <= 40:
        raise QrError("bad version")
    ec_bits, mask = format_info(m)
    words = codewords(m, version, mask)
    return decode_segments(data_codewords(words, version, ec_bits), version)
