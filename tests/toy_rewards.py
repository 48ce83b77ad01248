"""Rewards defined outside the package, for tests/test_seams.py (the grading workers import them
by module path, as they would a researcher's own)."""

import time


def length_reward(response, reference, template):
    return float(len(response)) / 10, {"formatted": True, "answer": response[:3], "timeout": False}


def set_reward(response, reference, template):
    return 1.0, {"answer": {1, 2}}  # a set: JSON cannot carry it


def slow_reward(response, reference, template):
    if response == "slow":
        time.sleep(60)
    return 1.0, {"formatted": True, "answer": response, "timeout": False}
