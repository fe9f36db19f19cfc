"""Image in, image out: the raw request body is a PNG, the answer is its negative, as image/png.

@rawhttp gives run() the request itself (Flask's request with Azure's server), and AMLResponse lets the
script set the status, the headers and the content type. PNG is decoded here with zlib alone, so the
sample needs no imaging library.
"""

import struct
import zlib

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.method != "POST":
        return AMLResponse("POST a PNG image", 405)
    image = request.files["image"].read() if request.files else request.get_data()
    try:
        width, height, channels, pixels = decode_png(image)
    except ValueError as error:
        return AMLResponse({"error": str(error)}, 400, json_str=True)
    inverted = bytes(255 - value for value in pixels)
    resp = AMLResponse(encode_png(width, height, channels, inverted), 200)
    resp.mimetype = "image/png"
    resp.headers["X-Image-Size"] = f"{width}x{height}"
    return resp


def _chunks(data):
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        yield kind, data[position + 8 : position + 8 + length]
        position += 12 + length


def decode_png(data):
    """(width, height, channels, pixel bytes) of an 8-bit RGB or RGBA PNG without interlacing."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("the body is not a PNG image")
    chunks = list(_chunks(data))
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError("only 8-bit RGB or RGBA PNGs without interlacing are handled by this sample")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    pixels = bytearray()
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 255
        pixels += line
        previous = line
    return width, height, channels, bytes(pixels)


def encode_png(width, height, channels, pixels):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    stride = width * channels
    rows = b"".join(b"\x00" + pixels[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
