"""Measure each turn's silence in a call recording and compare it with the metrics JSON.

    voxpipe demo --json out/demo.json --record out/demo-call.wav
    python examples/recording_gap.py out/demo.json out/demo-call.wav

The user is on the left channel, the agent on the right, both on the session clock: the
last user sample before an answer and the agent's first sample are what a listener hears.
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


if __name__ == "__main__":
    main(*sys.argv[1:3])
