"""Reliability suite (issue 8): bad inputs, killed runs, reruns, untrusted files, runner faults."""
