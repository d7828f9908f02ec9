"""Cyclic redundancy checks of the kind audio containers carry (MSB first, not reflected, starting from 0):
Ogg pages' CRC-32 (retrieval/ogg_pages.py), FLAC frames' CRC-8 and CRC-16 (retrieval/flac_frames.py)."""


def crc_table(poly: int, bits: int) -> list[int]:
    """The table of a CRC of `bits` bits by the polynomial `poly`, not reflected, starting from 0: Ogg's
    CRC-32 (0x04C11DB7), and FLAC's CRC-8 (0x07) and CRC-16 (0x8005)."""
    top, mask, table = 1 << (bits - 1), (1 << bits) - 1, []
    for byte in range(256):
        crc = byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & top else crc << 1) & mask
        table.append(crc)
    return table


def crc(table: list[int], bits: int, data: bytes | bytearray) -> int:
    """The CRC of `data` by a :func:`crc_table` of `bits` bits."""
    value, shift, mask = 0, bits - 8, (1 << bits) - 1
    for byte in data:
        value = ((value << 8) & mask) ^ table[(value >> shift) ^ byte]
    return value
