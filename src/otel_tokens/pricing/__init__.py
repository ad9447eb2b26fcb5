"""What a call cost and who bills it: the provider resolver (base URL -> provider), the pricer
(a pure function over genai-prices rate cards that never raises) and user price files.
May import the base modules (`names`, `record`) only.
"""
