"""The vidgate domain: tasks, attempts, statuses and the rules that move them.

Pure Python, standard library only: no I/O, no framework. Everything else in vidgate
(store, engine, api) is built around these types.
"""
