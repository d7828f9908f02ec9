"""Audio files by their suffix: the one table of which suffixes are audio and of what media type.

A folder walk (`retrieval index add`) takes the files whose suffix is here (a file named on the command line
is tried whatever its name: the decoder goes by the file's content, not its name); a clip's file is served
with its type (a browser's `<audio>` wants one) and downloaded under a name ending in a suffix of that type,
the first of its type here; a dataset's clip is looked for under each suffix in this order.
"""

from pathlib import PurePath

# suffix -> media type; of each type, the first suffix is the one a download's name is given
AUDIO_TYPES = {
    ".wav": "audio/wav", ".wave": "audio/wav", ".bwf": "audio/wav", ".rf64": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
    ".mp3": "audio/mpeg", ".mp2": "audio/mpeg",
    ".aiff": "audio/aiff", ".aif": "audio/aiff", ".aifc": "audio/aiff",
    ".caf": "audio/x-caf",
    ".au": "audio/basic", ".snd": "audio/basic",
    ".w64": "audio/x-w64",
}
UNKNOWN_TYPE = "application/octet-stream"


def is_audio_name(name: str | PurePath) -> bool:
    """Whether a file's name ends in an audio suffix (any case: `TAKE.WAV` is one)."""
    return PurePath(name).suffix.lower() in AUDIO_TYPES


def media_type(name: str | PurePath) -> str:
    """The media type of a file by its suffix; application/octet-stream for one not in AUDIO_TYPES."""
    return AUDIO_TYPES.get(PurePath(name).suffix.lower(), UNKNOWN_TYPE)


def suffixes_of(kind: str) -> tuple[str, ...]:
    """The suffixes of the media type `kind`, the one a download's name is given first (none: unknown)."""
    return tuple(suffix for suffix, type_ in AUDIO_TYPES.items() if type_ == kind)


def suffix_list() -> str:
    """The audio suffixes as a sentence names them: `.wav, .wave, ... and .w64`."""
    names = list(AUDIO_TYPES)
    return f"{', '.join(names[:-1])} and {names[-1]}"
