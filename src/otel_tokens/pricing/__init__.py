"""What a call cost: the pricer (a pure function over genai-prices that never raises) and
user price files. May import the base modules (`names`, `record`) only.
"""
