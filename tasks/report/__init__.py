"""Stage 8, reporting: the run summary, its artifacts and the ledger report (``run_report``), holdout
attribution with uplift intervals, and what a day planned and never sent (``missed``). Imports deliver and below.
"""
