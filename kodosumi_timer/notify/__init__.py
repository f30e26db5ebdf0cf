"""Notifications per schedule: a signed POST to the schedule's URL when one of its runs
ends in an event it asked for.

Decoupled from launching through the store: the timer only records runs; a notifier
loop (:mod:`kodosumi_timer.notify.loop`) reads the runs that ended, queues a delivery
per (run, event) in the ``notification`` table, and delivers them with retries.
"""
