"""Read an ONNX file's opset imports without the `onnx` package.

The module carries no `onnx` (it is a learning-side dependency), yet a bundle's
opset must be checked before TensorRT or ONNX Runtime sees the graph. An ONNX file
is a protobuf `ModelProto`; its `opset_import` (field 8) is a list of
`OperatorSetIdProto {domain = 1: string, version = 2: int64}`. Walking the
top-level fields also finds a truncated file: a field that runs past the end.
Wire format: https://protobuf.dev/programming-guides/encoding/
"""
from typing import Dict, Tuple

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_OPSET_IMPORT = 8
_GRAPH = 7


class OnnxInfoError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise OnnxInfoError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise OnnxInfoError("malformed varint")


def _fields(data: bytes):
    """Yield (field number, wire type, value) over one message's top-level fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxInfoError("malformed field")
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise OnnxInfoError("truncated")
            yield number, wire, data[pos:pos + length]
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(data):
                raise OnnxInfoError("truncated")
            yield number, wire, data[pos:pos + size]
            pos += size
        else:
            raise OnnxInfoError(f"unsupported wire type {wire}")


def read_opsets(path: str) -> Dict[str, int]:
    """{domain: version} of an ONNX model file ('' is the default ONNX domain)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data:
        raise OnnxInfoError("empty file")
    opsets: Dict[str, int] = {}
    has_graph = False
    for number, wire, value in _fields(data):
        if number == _GRAPH and wire == _BYTES:
            has_graph = True
        if number == _OPSET_IMPORT and wire == _BYTES:
            domain, version = "", 0
            for sub_number, sub_wire, sub_value in _fields(value):
                if sub_number == 1 and sub_wire == _BYTES:
                    domain = sub_value.decode("utf-8", "replace")
                elif sub_number == 2 and sub_wire == _VARINT:
                    version = sub_value
            opsets[domain] = version
    if not has_graph or not opsets:
        raise OnnxInfoError("no graph or no opset import")
    return opsets
