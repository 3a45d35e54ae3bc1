"""
Kernel rules
------------

Pure re-statements of what the kernel (and kexec-tools) compute: the
elfcorehdr format and its rebuild, the ranges excluded from it, which CPUs
get notes, which segments purgatory hashes, how big the header segment is,
what each segment holds and how the purgatory blob is laid out. Each
function cites the source it mirrors. Nothing here reads the target.
"""
