#!/bin/sh
# The differential suite again, every `rewind query --dir` answered by a real
# rewindd owning the archive, over DIR/rewindd.sock.
exec python3 "$(dirname "$0")/test_difftest.py" --sock
