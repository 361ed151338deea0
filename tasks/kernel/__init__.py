"""The shared kernel: what every stage needs and nothing stage-specific.

Settings (``LOYALTY_*``), run folders and their privacy (``paths``), retention (``retention``) and S3 sync (``runstore``), every closed vocabulary (``enums``), integer id
codes (``ids``), the business calendar and the send clock (``calendar``), the AWS client factory
(``aws``), progress reporting (``progress``) and the catalog's error type (``errors``). It imports no
other package of the engine; every stage may import it.
"""
