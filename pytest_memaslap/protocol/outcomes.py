"""What a reply parser reports: the outcome codes every codec, the recorder and the statistics share.

A parser returns ``(end, outcome)``: where the reply ended in the buffer (-1:
incomplete, read more) and one of these codes. The recorder uses the code as
the index of the counter it increments, so the values are fixed here, once.
"""

from __future__ import annotations

HIT = 0  # found / stored / deleted / touched: counted by the histogram, not by a counter
MISS = 1  # not found / not stored
ERROR = 2  # an error reply, a malformed reply, or a request the server never answered
