"""Tests of the scoring service (scoring/)."""
