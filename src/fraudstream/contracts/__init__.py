"""Message contracts shared by every component (topics ``input``, ``training``, ``output``)."""
