"""Stage 3-4, the customer profile: one row per customer from orders and events - RFM, lifecycle,
predicted value (BG/NBD and Gamma-Gamma, ``clv``), interests, incidents (``unhappy``), birthdays,
replenishment - then named segments over it (``segments``, audience expressions in ``expressions``),
the shop's KPIs and their charts. Imports data and the kernel.
"""
