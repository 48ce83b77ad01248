"""understand-r1-zero: a compact library for R1-Zero-style RL of LLMs on math.

Only the version lives here: importing the package must stay light so that
``understand_r1_zero.math_grader`` and ``understand_r1_zero.templates`` can be
used without torch or vLLM.
"""

__version__ = "0.1.0"
