"""User text as it is stored: a clip's name, and the description, tags and field values a user or a file gives
it (index/store/metadata.py). One rule of characters holds for all of them, used two ways: text read from
files (a file's name, its embedded metadata, a shard) is cleaned (`stored_text`: what the rule takes out is
dropped, a control character between two words a space), text a user sends as metadata (PATCH, the upload
form, the CLI's CSV) is refused naming the first character the rule takes out (`checked_text`, a ValueError
the service answers with 422), then stored as `stored_text` makes it.

The rule: lone surrogates are not text (U+FFFD when cleaned); control characters (NUL, ESC, DEL, C1...) and
the controls of Unicode's bidirectional algorithm (U+202E before `gnp.wav` shows `vaw.png`) are taken out
(a run of control characters parting two words leaves a space);
tabs and line breaks (CR, LF, VT, FF, NEL, U+2028, U+2029: where str.splitlines and some viewers break a
line) are spacing: one line of text (a name, a tag) has a space for each, text of lines (a description, a
field value) keeps tabs and has LF for each line break (CRLF one); the text is in Unicode's composed form
(NFC: `café` typed on Windows and as macOS gives it, decomposed, is one text) without spaces at either end.

A clip's name (`clip_name`) is one line of that text, whichever way the clip came in: an upload
(app/uploads.py `bare_name`, which first picks the name and its last path component), `index add` from a
file's name, the library's ingest with an Item's name, a bulk load from shards, and a file moved (the name
following it): the same name given the same way gives the same stored name.
"""

import re
import unicodedata

MAX_NAME_CHARS = 255
# line breaks (Unicode's line and paragraph separators and NEL too: a line is split there by str.splitlines
# and by some viewers) and tabs: spacing, not controls to take out
LINE_BREAKS = frozenset("\n\r\v\f\x85\u2028\u2029")
SPACING_CONTROLS = LINE_BREAKS | {"\t"}
# the characters the rule takes out, as regex ranges: the control characters (Unicode's category Cc:
# U+0000-001F, U+007F-009F) but the spacing ones; the embeddings, overrides and isolates of Unicode's
# bidirectional algorithm (they make a text read otherwise); lone surrogates apart (see SURROGATE)
CONTROLS = "\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"
DIRECTIONS = "\u202a-\u202e\u2066-\u2069"
TAKEN_OUT = re.compile(f"[{CONTROLS}{DIRECTIONS}]")
CONTROL_RUN = re.compile(f"[{CONTROLS}]+")  # a run of control characters
DIRECTION = re.compile(f"[{DIRECTIONS}]")
BIDI_CONTROLS = frozenset(ch for ch in map(chr, range(0x2000, 0x2070)) if DIRECTION.fullmatch(ch))
SURROGATE = re.compile("[\ud800-\udfff]")
ONE_LINE = str.maketrans(dict.fromkeys(SPACING_CONTROLS, " "))
LF_LINES = str.maketrans(dict.fromkeys(LINE_BREAKS, "\n"))


def stored_text(text: str, *, lines: bool = False) -> str:
    """`text` as it is stored, cleaned by the rule (the module's): each lone surrogate (os.fsdecode holds a
    file name's byte that is not UTF-8 as one; no UTF-8 store holds it) as U+FFFD, the replacement character,
    as a file manager shows such a byte (a well-formed pair held as two surrogates is the one character it
    encodes); a run of control characters a space where it parts two words, else nothing; without direction
    controls; one line with a space for each tab and line
    break, or with `lines` its tabs kept and its line breaks LF (lf_text); composed (NFC); without spaces at
    either end. It may be empty (spaces and controls alone). Cleaning it again changes nothing."""
    if text.isascii() and text.isprintable():  # the common case: nothing to clean but the ends
        return text.strip()
    if SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = CONTROL_RUN.sub(_parting, DIRECTION.sub("", text))  # before NFC: a mark after a NUL composes
    text = lf_text(text) if lines else text.translate(ONE_LINE)
    return unicodedata.normalize("NFC", text).strip()


def _parting(run: re.Match) -> str:
    """What a run of control characters leaves: a space where it stood between two words (`Door<ESC>slam` is
    two words, as the file's tool meant), nothing beside a space, at either end or before a combining mark
    (which composes with the letter before the run)."""
    text, start, end = run.string, run.start(), run.end()
    between = (0 < start and end < len(text) and not text[start - 1].isspace() and not text[end].isspace()
               and not unicodedata.category(text[end]).startswith("M"))
    return " " if between else ""


def lf_text(text: str) -> str:
    """Line breaks as LF: a file's CRLF (or CR) text and a form's LF text are the same, and so are NEL, VT,
    FF and Unicode's line and paragraph separators."""
    return text.replace("\r\n", "\n").translate(LF_LINES)


def refusal(text: str) -> str | None:
    """Why the rule refuses `text` a user sends (what `stored_text` would take out), saying its first such
    character; None when it takes nothing out. Text a store cannot hold at all comes first (`unstorable`)."""
    if (why := unstorable(text)) is not None:
        return why
    if found := TAKEN_OUT.search(text):
        ch = found.group()
        if ch in BIDI_CONTROLS:
            return f"contains U+{ord(ch):04X}, a control of text's direction (it makes text read otherwise)"
        return f"contains the control character U+{ord(ch):04X}"
    return None


def checked_text(text: str, *, lines: bool = False) -> str:
    """Text a user sends, as it is stored (`stored_text`); ValueError saying why (`refusal`) when the rule
    would take a character out of it rather than store what was not sent."""
    if (why := refusal(text)) is not None:
        raise ValueError(why)
    return stored_text(text, lines=lines)


def unstorable(text: str) -> str | None:
    """Why a store (SQLite, Qdrant, a JSON file) cannot hold `text` as it is: a NUL (C APIs cut strings there)
    or a lone surrogate (not encodable as UTF-8); None when it can."""
    if "\0" in text:
        return "contains a NUL character"
    if SURROGATE.search(text):
        return "contains a lone surrogate, which is not text"
    return None


def clip_name(name: str, *, limit: int | None = MAX_NAME_CHARS) -> str:
    """`name` as a clip's stored name: one line of text as `stored_text` cleans it (a lone surrogate as
    U+FFFD, composed, tabs and line breaks as spaces, no other control characters nor direction controls,
    no spaces at either end), at most `limit` characters (None: whole). It may be empty (a name of spaces
    and controls alone). Cleaning a name again changes nothing."""
    return stored_text(name)[:limit].rstrip()


def is_text(value: str) -> bool:
    """Whether `value` is text a store can hold as it is: no lone surrogate (os.fsdecode's stand-in for a
    byte of a file's path that is not UTF-8; the path would not open again from text without it)."""
    return SURROGATE.search(value) is None
