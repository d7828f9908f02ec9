"""The service's request and response bodies, a module per role: search, clips, jobs, health; common holds
what they share. Every field carries a description and an example.

Every value a request carries to the store is bounded here, once, so that what the store cannot hold is
refused with 422 at the edge instead of failing inside it (SQLite binds integers as signed 64-bit and text
as UTF-8; Qdrant's point ids are unsigned 64-bit, its filters travel as JSON, which has no NaN or
infinity): clip ids in [1, 2^63 - 1], page offsets in [0, 2^63 - 1], finite durations, texts without NUL
or lone surrogates, bounded lengths and k, at most MAX_EXAMPLES clip ids per list, weights in [0, 2].
"""
