"""Evaluation harness: accuracy and demographic bias of lfr, measured the NIST FRTE 1:N way.

Imports lfr; lfr never imports it.
"""
