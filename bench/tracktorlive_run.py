"""The real TracktorLive (../shared/tracktorlive, TRACKTORLIVE_SRC, or an installed one) tracking a
live stream through its Python API, as a lab runs it: realtime=True (so the tracking CSV holds the
server's clock), the video (-d) and the tracking CSV (-w) written. Used by the bench and one test;
never shipped. Arguments: SOURCE FEED_ID SECONDS. With TRACKTORLIVE_T_INIT_FILE set, the server's
t_init (epoch seconds) is written there at the end, for the bench's timesync file."""
import os
import sys

import tracktorlive as trl

PARAMS = {"block_size": 123, "offset": 20, "min_area": 374, "max_area": 1747, "invert": 1, "fps": 30.0}

source, feed_id, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
server, semm = trl.spawn_trserver(
    source,
    params=PARAMS,
    feed_id=feed_id,
    realtime=True,
    timeout=seconds,
    write_video=True,
    write_recordings=True,
)
trl.run_trsession(server, semm)

t_init_file = os.environ.get("TRACKTORLIVE_T_INIT_FILE")
if t_init_file:
    with open(t_init_file, "w") as out:
        out.write(repr(server.t_init))
