"""
Renderers
---------

One module per output format. A renderer takes a finished report and returns
text; it never reads the target.
"""
