"""The one error of the phrase reader."""

from __future__ import annotations


class WordsError(ValueError):
    """A phrase that cannot be read as a schedule rule; ``field`` is "text".

    ``reason`` says what was not understood; the message adds the nearest form the
    grammar knows once :func:`kodosumi_timer.words.read_rule` has found it.
    """

    field = "text"

    def __init__(self, reason: str, suggestion: str | None = None) -> None:
        self.reason = reason
        self.suggestion = suggestion
        hint = f"; the nearest form I know: \"{suggestion}\"" if suggestion else ""
        super().__init__(reason + hint)
