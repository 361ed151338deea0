"""What is particular to a job beyond the shared stages: an ad-hoc campaign's request, preview and
approval (``adhoc``); the order-updates window, candidates and watermark (``order_updates``); forgetting a
customer everywhere (``forget``). Each
plans through ``tasks.plan.planner`` and sends like the daily run. Imports every stage.
"""
