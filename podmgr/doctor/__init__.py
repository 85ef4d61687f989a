"""`podmgr doctor`: find out, for a few cents, what only a real RunPod account can show.

One short run against the user's account: the key and its rate-limit policy, the cheapest
GPU that fits a 0.5B model, a pod with the guard (does RunPod honour the start-command
JSON?), one answer through the local proxy, the guard ending its idle pod, and what it
cost by podmgr's count and by RunPod's billing. Never more than the bound it states before
spending, and never a pod left billing.

    run.py      Doctor: the steps in order and the clean-up
    choice.py   pure decisions: the GPU, the bound, the pod's config
    pods.py     the pods doctor creates, and every bounded wait on them
    ask.py      one question through the real proxy
    report.py   Step, Report, and the meter of dollars billed so far
"""

from podmgr.doctor.report import Report, Step
from podmgr.doctor.run import Doctor, DoctorOptions

__all__ = ["Doctor", "DoctorOptions", "Report", "Step"]
