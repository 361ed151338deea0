"""Stage 8, reporting: the run summary, its artifacts and the ledger report (``run_report``), and
holdout attribution with uplift intervals. Imports deliver and below.
"""
