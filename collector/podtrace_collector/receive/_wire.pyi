"""Type stub for the optional C scanner (``_wire.c``)."""

SpanRecord = tuple[bytes, bytes, bytes, str, int, int, int, bytes, list[bytes]]

def scan(body: bytes, /) -> list[tuple[list[bytes], list[SpanRecord]]] | None: ...
