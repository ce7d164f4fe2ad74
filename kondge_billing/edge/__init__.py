"""The RADIUS edge: FreeRADIUS's pairs in, answers out, overload shed here.

attributes.py spells every attribute name; request.py turns pairs into
plain requests; radius_edge.py asks the call service and turns its answer
back into pairs; hook_runtime.py is the hook's process-wide state.
"""
