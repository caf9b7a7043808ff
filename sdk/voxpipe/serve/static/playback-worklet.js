// The agent's audio: a queue of Float32Array pieces played in order. After the queue runs
// dry, new audio waits `jitterSamples` before it plays (a small jitter buffer). "clear"
// (barge-in) drops everything queued at once. Reports the samples played and queued (as
// they change, every ~20 ms, and when the queue runs dry).

const REPORT_EVERY_FRAMES = 1024; // ~21 ms at 48 kHz

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.jitterSamples = options.processorOptions.jitterSamples;
    this.pieces = [];
    this.offset = 0; // read position in pieces[0]
    this.queued = 0;
    this.played = 0;
    this.startAt = null; // frame at which waiting audio starts playing; null while playing
    this.lastReport = { frame: 0, played: 0, queued: 0 };
    this.port.onmessage = ({ data }) => (data === "clear" ? this.clear() : this.enqueue(data));
  }

  enqueue(samples) {
    if (this.queued === 0 && this.startAt === null) {
      this.startAt = currentFrame + this.jitterSamples;
    }
    this.pieces.push(samples);
    this.queued += samples.length;
  }

  clear() {
    const dropped = this.queued;
    this.pieces = [];
    this.offset = 0;
    this.queued = 0;
    this.startAt = null;
    this.port.postMessage({ type: "cleared", dropped, played: this.played, queued: this.queued });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (this.startAt !== null && currentFrame >= this.startAt) {
      this.startAt = null;
    }
    if (this.startAt === null && this.queued > 0) {
      this.played += this.read(out);
      if (this.queued === 0) {
        this.report();
      }
    }
    const last = this.lastReport;
    const changed = this.played !== last.played || this.queued !== last.queued;
    if (changed && currentFrame - last.frame >= REPORT_EVERY_FRAMES) {
      this.report();
    }
    return true;
  }

  read(out) {
    let written = 0;
    while (written < out.length && this.pieces.length > 0) {
      const piece = this.pieces[0];
      const n = Math.min(out.length - written, piece.length - this.offset);
      out.set(piece.subarray(this.offset, this.offset + n), written);
      written += n;
      this.offset += n;
      if (this.offset === piece.length) {
        this.pieces.shift();
        this.offset = 0;
      }
    }
    this.queued -= written;
    return written;
  }

  report() {
    this.lastReport = { frame: currentFrame, played: this.played, queued: this.queued };
    this.port.postMessage({ type: "playing", played: this.played, queued: this.queued });
  }
}

registerProcessor("playback", PlaybackProcessor);
