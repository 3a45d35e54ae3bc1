"""
Architectures
-------------

One module per architecture with every constant and address rule the
readers and checks need. Only x86_64 is implemented; other architectures'
purgatory and elfcorehdr rules differ (kernel-notes §7).
"""
