"""Measure each turn's silence in a call recording and compare it with the metrics JSON.

    voxpipe demo --json out/demo.json --record out/demo-call.wav
    python examples/recording_gap.py out/demo.json out/demo-call.wav

The user is on the left channel, the agent on the right, both on the session clock: the
last user sample before an answer and the agent's first sample are what a listener hears.
For an answer the user interrupted (``voxpipe demo --barge-in``), it also finds where the
agent's audio stops and compares it with the moment the interruption was detected.
"""

import json
import sys

import numpy as np

from voxpipe import read_wav


def main(metrics_path: str, recording_path: str) -> None:
    with open(metrics_path) as f:
        turns = json.load(f)["turns"]
    stereo, rate = read_wav(recording_path)
    user, agent = stereo[:, 0], stereo[:, 1]
    print("turn  user stops (JSON)     agent starts (JSON)    heard gap (JSON TTFA)  ms")
    for turn in turns:
        stamps = turn["timestamps_ms"]
        playout = round(stamps["playout_start"] * rate / 1000)
        last_user = np.flatnonzero(user[:playout])[-1] + 1  # the user's last sound before it
        first_agent = playout - rate // 50 + np.flatnonzero(agent[playout - rate // 50 :])[0]
        heard = (first_agent - last_user) * 1000 / rate
        print(
            f"{turn['index']:>4}  {last_user * 1000 / rate:9.2f} ({stamps['speech_end']:9.2f})"
            f"  {first_agent * 1000 / rate:9.2f} ({stamps['playout_start']:9.2f})"
            f"  {heard:8.2f} ({turn['latency_ms']['time_to_first_audio']:8.2f})"
        )
    for turn, later in zip(turns, [*turns[1:], None], strict=True):
        if not turn["interrupted"] or turn["timestamps_ms"]["output_silent"] is None:
            continue
        stamps = turn["timestamps_ms"]
        until = (
            len(agent)
            if later is None
            else round(later["timestamps_ms"]["playout_start"] * rate / 1000)
        )
        stops = (np.flatnonzero(agent[:until])[-1] + 1) * 1000 / rate
        print(
            f"turn {turn['index']} interrupted: detected {stamps['interruption_detected']:.2f} ms,"
            f" agent audio stops {stops:.2f} ms in the recording"
            f" ({stops - stamps['interruption_detected']:+.2f} ms; JSON output_silent"
            f" {stamps['output_silent']:.2f}); heard: {turn['heard_text']!r}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
