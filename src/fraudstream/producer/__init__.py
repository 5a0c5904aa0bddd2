"""Publishing transactions to ``input`` and delayed ground truth to ``training``."""
