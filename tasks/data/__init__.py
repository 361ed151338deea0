"""Stage 1-2, the data: the input contract, sources (a folder or ``s3://``, CSV or Parquet), validation
with quarantine, the point-in-time snapshot of a day, and importers of real shop exports (UCI Online
Retail). Imports only the kernel.
"""
