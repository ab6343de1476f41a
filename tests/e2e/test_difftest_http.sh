#!/bin/sh
# The differential suite again, every query through curl against a real
# rewindd on a loopback port.
exec python3 "$(dirname "$0")/test_difftest.py" --http
