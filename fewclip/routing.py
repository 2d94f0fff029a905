"""Which path each image file takes in the embed stage's GPU decoding (`fewclip.decode`):
"gpu", for a JPEG that nvJPEG decodes as the CPU path would, or the reason it must take the
CPU path, read from the file's bytes alone (the header up to the first scan, then the
markers up to the EOI), cheaply enough for the data-loading workers.

Why a file takes the CPU path (what `RouteCounts.summary` counts):
  not a JPEG                   no SOI marker (PNG, WebP, an empty file, ...)
  arithmetic coding            SOF9-11, SOF13-15
  12-bit                       12-bit samples
  not baseline or progressive  extended sequential, lossless, hierarchical (SOF1, 3, 5-7)
  CMYK                         4 components (CMYK, or Adobe YCCK), which `load_rgb` converts
  unusual layout               2 components, or a chroma subsampling nvJPEG does not list
  RGB-coded                    3 components stored as RGB (Adobe transform 0, or ids R, G, B)
  too large                    over PIL's MAX_IMAGE_PIXELS, which the CPU path refuses
  EXIF-rotated                 an orientation other than 1 in the EXIF (or, lacking one, the
                               XMP), which `load_rgb` applies; or an unreadable EXIF block
  truncated                    no EOI marker after the scan data
  corrupt                      the header does not parse, a marker that has no place in the
                               scan data (nvJPEG decodes those into garbage without an
                               error), or nvJPEG failed on the file
nvJPEG's documented scope (docs.nvidia.com/cuda/nvjpeg): baseline and progressive Huffman
JPEGs, 8 bits, YCbCr or grey, subsampling 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, 4:1:0.
"""

from __future__ import annotations

import re
import struct
from collections import Counter

from PIL import Image

GPU = "gpu"
CORRUPT = "corrupt"
UNREADABLE = "unreadable"   # the route of a file that could not be read at all

_ARITHMETIC = frozenset((0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7)) | _ARITHMETIC
_NVJPEG_SUBSAMPLING = frozenset(((1, 1), (2, 1), (2, 2), (1, 2), (4, 1), (4, 2)))  # luma/chroma (h, v)
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # what PIL's getexif reads


def route(data: bytes) -> str:
    """"gpu", or the reason (module docstring) the file `data` must take the CPU path.
    Reads the marker segments up to the first scan, then the markers after it up to the EOI."""
    if data[:2] != b"\xff\xd8":
        return "not a JPEG"
    sof = adobe = exif = xmp = None
    pos = 2
    while True:
        while data[pos:pos + 2] == b"\xff\xff":  # fill bytes before a marker
            pos += 1
        if pos + 4 > len(data):
            return "truncated"
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker == 0xD9:  # not a marker, or EOI before any scan
            return CORRUPT
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            pos += 2
            continue
        end = pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]
        if end > len(data):
            return "truncated"
        segment = data[pos + 4:end]
        if marker == 0xDA:  # start of scan: the header is over
            break
        if marker in _SOF and sof is None:
            sof = marker, segment
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and exif is None:
            exif = segment[6:]
        elif marker == 0xE1 and segment.startswith(_XMP):
            xmp = segment  # PIL keeps the last XMP segment
        elif marker == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12:
            adobe = segment[11]  # the colour transform flag
        pos = end
    if sof is None:
        return CORRUPT
    reason = _frame_reason(*sof)
    if reason:
        return reason
    if adobe == 0 and sof[1][5] == 3:
        return "RGB-coded"
    height, width = struct.unpack_from(">HH", sof[1], 1)
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        return "too large"
    orientation = _exif_orientation(exif) if exif is not None else None
    if orientation is None and xmp is not None and (m := _XMP_ORIENTATION.search(xmp)):
        orientation = int(m[2])
    if orientation not in (None, 1):
        return "EXIF-rotated"
    return _scan_reason(data, end)


_BETWEEN_SCANS = frozenset((0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE)) | frozenset(range(0xE0, 0xF0))


def _scan_reason(data: bytes, pos: int) -> str:
    """"gpu" if the markers from `pos` (the first scan's data) to the EOI are those a JPEG
    may hold there: byte stuffing, restarts, and whole segments between the scans
    (tables, further scans, comments, APPn); else "truncated" (no EOI) or "corrupt" (any
    other marker, such as a frame header inside the scan data). nvJPEG decodes such files
    without an error, into garbage, where libjpeg (the CPU path) refuses them. Bit errors
    inside the entropy-coded data, which no marker shows, are not found here."""
    while (pos := data.find(b"\xff", pos)) >= 0:
        if pos + 1 >= len(data):
            break
        marker = data[pos + 1]
        if marker == 0xD9:
            return GPU
        if marker in (0x00, 0xFF) or 0xD0 <= marker <= 0xD7:  # stuffing, fill, restart
            pos += 1 if marker == 0xFF else 2
        elif marker in _BETWEEN_SCANS:
            if pos + 4 > len(data):
                break
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
        else:
            return CORRUPT
    return "truncated"


def _frame_reason(marker: int, segment: bytes) -> str | None:
    """Why nvJPEG should not decode a frame with this SOF marker and segment, or None."""
    if len(segment) < 6 or len(segment) < 6 + 3 * segment[5]:
        return CORRUPT
    precision, height, width, n = segment[0], *struct.unpack_from(">HH", segment, 1), segment[5]
    if marker in _ARITHMETIC:
        return "arithmetic coding"
    if precision == 12:
        return "12-bit"
    if marker not in (0xC0, 0xC2):
        return "not baseline or progressive"
    if precision != 8 or height == 0 or width == 0:
        return CORRUPT
    if n in (1, 4):
        return "CMYK" if n == 4 else None
    if n != 3:
        return "unusual layout"
    (yh, yv), (bh, bv), (rh, rv) = [(hv >> 4, hv & 15) for hv in segment[7:15:3]]
    if (bh, bv) != (rh, rv) or 0 in (bh, bv) or yh % bh or yv % bv \
            or (yh // bh, yv // bv) not in _NVJPEG_SUBSAMPLING:
        return "unusual layout"
    if segment[6:15:3] == b"RGB":  # component ids R, G, B: libjpeg takes the data as RGB
        return "RGB-coded"
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """The Orientation in IFD0 of an EXIF block; None without one, 0 if unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == 0x0112:
                return struct.unpack_from(order + {3: "H", 4: "I"}[kind], tiff, entry + 8)[0]
    except (KeyError, struct.error):
        return 0
    return None


class RouteCounts(Counter):
    """How many files took each path: "gpu", "unreadable", or the reason for the CPU path.
    Feed it the `routes` of each batch: `counts.update(routes)`."""

    def describe(self) -> str:
        """e.g. "gpu 770, cpu 5 (3 not a JPEG, 1 CMYK, 1 EXIF-rotated)"."""
        cpu = sorted(((r, n) for r, n in self.items() if r not in (GPU, UNREADABLE) and n),
                     key=lambda rn: (-rn[1], rn[0]))
        line = f"gpu {self[GPU]}, cpu {sum(n for _, n in cpu)}"
        if cpu:
            line += " (" + ", ".join(f"{n} {r}" for r, n in cpu) + ")"
        return line + (f", unreadable {self[UNREADABLE]}" if self[UNREADABLE] else "")
