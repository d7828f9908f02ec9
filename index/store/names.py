"""A clip's name as it is stored, whichever way the clip came in: an upload (app/uploads.py `bare_name`,
which first picks the name and its last path component), `index add` from a file's name, the library's
ingest with an Item's name, a bulk load from shards, and a file moved (the name following it): the same name
given the same way gives the same stored name.
"""

import unicodedata

MAX_NAME_CHARS = 255
# line breaks and tabs: a space each (Unicode's line and paragraph separators and NEL too: a line is split
# there by str.splitlines and by some viewers)
SPACING_CONTROLS = frozenset("\t\n\r\v\f\x85\u2028\u2029")
# embeddings, overrides and isolates of Unicode's bidirectional algorithm: they make a name read otherwise
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DROPPED = ("Cc", "Cs")  # control characters; lone surrogates (none is left by then: each is U+FFFD)


def clip_name(name: str, *, limit: int | None = MAX_NAME_CHARS) -> str:
    """`name` as a clip's stored name: each lone surrogate (os.fsdecode holds a file name's byte that is not
    UTF-8 as one; no UTF-8 store holds it) as U+FFFD, the replacement character, as a file manager shows such
    a byte (a well-formed pair held as two surrogates is the one character it encodes); in Unicode's composed
    form (NFC: `café` typed, and as macOS's file systems give it, decomposed, is one name); tabs and line
    breaks as spaces (one name, one line of a CSV, a label track or the command line's output); without other
    control characters (NUL, ESC...) or the controls that reverse text's direction (U+202E before `gnp.wav`
    shows `vaw.png`); without spaces at either end; at most `limit` characters (None: whole). It may be
    empty (a name of spaces and controls alone). Cleaning a name again changes nothing."""
    whole = name.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    printable = "".join(" " if ch in SPACING_CONTROLS else ch for ch in whole
                        if ch in SPACING_CONTROLS or unicodedata.category(ch) not in DROPPED
                        if ch not in BIDI_CONTROLS)  # before NFC: a mark after a dropped NUL is composed
    return unicodedata.normalize("NFC", printable).strip()[:limit].rstrip()


def is_text(value: str) -> bool:
    """Whether `value` is text a store can hold as it is: no lone surrogate (os.fsdecode's stand-in for a
    byte of a file's path that is not UTF-8; the path would not open again from text without it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
