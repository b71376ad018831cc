"""A Griffe extension for the docs build: `Example:` sections render as code.

Griffe's Google-style parser knows the section title `Examples:` (rendered as a
highlighted `>>>` session) but reads the singular `Example:` as a generic
admonition whose `>>>` lines become Markdown block quotes. The library's
docstrings use the singular, so this rewrites the title before parsing.
"""

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


class DoctestExamples(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        del kwargs
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(
                r"\g<indent>Examples:", obj.docstring.value
            )
