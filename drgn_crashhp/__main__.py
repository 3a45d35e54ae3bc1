"""``python -m drgn_crashhp``: the same as the ``drgn-crashhp`` command."""

from drgn_crashhp.requirements import cli_entry

cli_entry()
