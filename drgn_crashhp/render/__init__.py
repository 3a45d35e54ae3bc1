"""
Renderers
---------

One module per output format. A renderer takes a finished report and returns
text; it never reads the target.
"""

#: The sections of the text report, in order.
SECTIONS = ("image", "elfcorehdr", "purgatory", "state", "findings")
#: Output formats: one module of this package each.
FORMATS = ("text", "json", "prometheus", "html")
