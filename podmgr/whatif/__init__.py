"""`podmgr cost simulate`: what a config would have cost on a trace of requests.

trace.py          read a CSV / JSON-lines trace (errors name the line)
runpod_model.py   pods on a virtual clock: start-up phases, billing, spot, guard
replay.py         the real plan() pass by pass over the trace
pods.py           several models (config `pods`): the real plan_set(), per pod and in total
prices.py         hourly prices: the saved catalog, else the simulator's
workweek.py       the generator of the shipped synthetic work-week trace
"""
