"""``python -m drgn_crashhp``: the same as the ``drgn-crashhp`` command."""

from drgn_crashhp.cli import entry

entry()
