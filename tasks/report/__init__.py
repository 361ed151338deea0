"""Stage 8, reporting: the run summary, its artifacts and the ledger report (``run_report``), holdout
attribution with uplift intervals, what a day planned and never sent (``missed``), support's call list
(``calls``), hashed audiences for ad platforms (``audiences``) and the after-delivery survey's weekly NPS
report (``survey``). Imports deliver and below.
"""
