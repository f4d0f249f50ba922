"""
Reading the packet list ffmpeg's ``framecrc`` muxer prints (``-c copy -f
framecrc``: demuxed, never decoded), which gives ``info`` the end of a stream
whose container has no duration and ``index`` the packets a grab chooses from.
"""
_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it


def _packet_times(fields):
    """``(dts, pts)`` of a packet row split on commas, pts falling back to dts; None if neither is usable."""
    try:
        dts, pts = int(fields[1]), int(fields[2])
    except ValueError:
        return None
    if pts == _NOPTS:
        pts = dts
    if pts == _NOPTS:
        return None
    return dts, pts
