"""The catalog's error: a campaign, segment or content file that cannot be used.

In the kernel because the files it speaks of are read by several stages (segments by the profile,
campaigns by the plan, templates by rendering); each raises it naming the file, the field and why.
"""

from __future__ import annotations


class CatalogError(ValueError):
    """A catalog file is invalid; the message names the file and the field."""
