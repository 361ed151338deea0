"""Stage 5, recommendations: weighted interactions, the models (popularity, item-item, EASE) scored in
bounded blocks, the shop's pick rules with a reason per product (``picks``), and offline evaluation.
Imports profile, data and the kernel.
"""
